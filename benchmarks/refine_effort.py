"""What each `aecli compress --effort` level buys, and what it costs.

    python -m benchmarks.refine_effort --out docs/results/refine_effort   # writes .md and .json

On the bundled model's held-out CBSD432 images (its JSON lists them; never an evaluation set):
every quality at effort 0 gives the reference curve (mean file bpp, mean PSNR); then, at a few
qualities, each effort level's mean file bpp, PSNR and encoding seconds per image.  "Rate saved"
compares a refined point with the effort-0 curve at the same PSNR (log-bpp interpolated linearly
between the neighbouring levels): the share of the bits refinement saves at equal quality.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from aecli.metrics import psnr
from aecli.train.data import list_images

from .common import RESULTS, SHARED_DATA, progress_bar, rate_at


def saved_label(r: dict) -> str:
    if r.get("rate_saved") is not None:
        return f"{100 * r['rate_saved']:.1f}%"
    if r.get("rate_saved_at_least") is not None:  # better than effort 0's top level, with fewer bits
        return f"over {100 * r['rate_saved_at_least']:.1f}% (more PSNR than effort 0's best level, in fewer bits)"
    return "n/a (outside the effort-0 curve)"


def render(result: dict) -> str:
    lines = [f"# Encoder effort: what refinement buys (model `{result['model']}`, fingerprint {result['fingerprint']})", "",
             f"Command: `{result['command']}`. {len(result['images'])} held-out CBSD432 images "
             f"({', '.join(result['images'])}), means over images; {result['machine']}.", "",
             "| quality | effort | steps | file bpp | PSNR (dB) | rate saved at equal PSNR | encode s per image |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['quality']} | {r['effort']} | {result['steps'].get(str(r['effort']), 0)} | {r['bpp']:.4f} "
                     f"| {r['psnr']:.2f} | {saved_label(r)} | {r['encode_s']:.1f} |")
    top = max(result["effort0_curve"], key=lambda p: p["psnr"])
    lines += ["", f"Effort 0's best level on these images: quality {top['quality']}, {top['bpp']:.4f} bpp, "
              f"{top['psnr']:.2f} dB. Rate saved: against the effort-0 curve at the same PSNR, log-bpp interpolated "
              "between levels.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "CBSD432")
    ap.add_argument("--model", default=None, help="codec model (default: the bundled one)")
    ap.add_argument("--images", type=int, default=4, help="how many of the held-out images")
    ap.add_argument("--qualities", default="2,6,10", help="qualities to refine (comma-separated)")
    ap.add_argument("--efforts", default="1,2,3")
    ap.add_argument("--out", type=Path, default=RESULTS / "refine_effort", help="output stem (.md and .json)")
    ap.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    args = ap.parse_args()
    if args.render:
        args.out.with_suffix(".md").write_text(render(json.loads(args.out.with_suffix(".json").read_text())))
        return 0

    import torch
    from PIL import Image as PILImage

    from aecli import format as latformat
    from aecli.codec import refine
    from aecli.codec.api import load_codec
    from aecli.images.image import Image

    codec = load_codec(args.model)
    names = set(codec.files.meta.get("validation", {}).get("images") or [])
    files = [p for p in list_images(args.data) if p.name in names][: args.images]
    if not files:
        raise SystemExit(f"none of the model's held-out images are under {args.data}")
    images = [Image(np.asarray(PILImage.open(f).convert("RGB")), None, "RGB", 8) for f in files]
    qualities = [int(q) for q in args.qualities.split(",")]
    efforts = [int(e) for e in args.efforts.split(",")]

    def point(q: int, effort: int) -> dict:
        bpp, ps, secs = [], [], []
        for img in images:
            h, w = img.pixels.shape[:2]
            t0 = time.perf_counter()
            data = codec.compress(img, q, effort=effort)
            secs.append(time.perf_counter() - t0)
            back = codec.decompress(latformat.unpack(data)).pixels
            bpp.append(8 * len(data) / (h * w))
            ps.append(psnr(back, img.pixels))
        return {"quality": q, "effort": effort, "bpp": round(float(np.mean(bpp)), 4),
                "psnr": round(float(np.mean(ps)), 3), "encode_s": round(float(np.mean(secs)), 2)}

    steps = {e: refine.effort(e).steps for e in efforts}
    with progress_bar() as bar, torch.no_grad():
        job = bar.add_task("efforts", total=len(codec.qualities) + len(qualities) * len(efforts), stats="")
        base = []
        for q in codec.qualities:
            base.append(point(q, 0))
            bar.advance(job)
        curve = [(p["bpp"], p["psnr"]) for p in base]
        rows = []
        for q in qualities:
            rows.append(dict(next(p for p in base if p["quality"] == q), rate_saved=0.0))
            for e in efforts:
                p = point(q, e)
                ref = rate_at(curve, p["psnr"])
                p["rate_saved"] = None if ref is None else round(1 - p["bpp"] / ref, 4)
                top = max(base, key=lambda b: b["psnr"])
                if ref is None and p["psnr"] > top["psnr"] and p["bpp"] < top["bpp"]:
                    p["rate_saved_at_least"] = round(1 - p["bpp"] / top["bpp"], 4)
                rows.append(p)
                bar.advance(job)
    result = {"model": codec.name, "fingerprint": codec.files.meta.get("fingerprint"), "images": [f.name for f in files],
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads",
              "steps": {str(e): steps[e] for e in efforts}, "effort0_curve": base, "rows": rows,
              "command": "python -m benchmarks.refine_effort " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

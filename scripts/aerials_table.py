"""The Aerials table: BD-rates of the fine-tuned codec against the bundled one, WebP and AVIF.

Reads the two results of scripts/finetune_aerials.sh (docs/results/aerials_adapted.json: the fine-tuned
model with the WebP and AVIF baselines; docs/results/aerials_hpc.json: the bundled hpc) and the fine-tuned
model's JSON; prints a Markdown table. BD-rate < 0: the first codec needs fewer bits at equal quality.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from aecli.eval import rd


def curve(points, key):
    r = [p["bpp"] for p in points]
    q = [p["psnr"] if key == "psnr" else -10 * math.log10(max(1 - p["ms_ssim"], 1e-12)) for p in points]
    return r, q


def bd(ref, test, key="psnr"):
    try:
        return rd.bd_rate(*curve(ref, key), *curve(test, key))
    except ValueError:
        return float("nan")


def _images(docs: Path, runs: Path, who: str) -> dict[str, dict]:
    """{image name: {quality: point}} of every test image measured for `who` (adapted, hpc): from the
    record of its unfinished sweep (docs/results/aerials_WHO.partial.jsonl, or the copy kept in runs/aerials/snap),
    and from one-image sweeps (runs/aerials/per_image/WHO_NN.json), run beside it on a busy machine."""
    out: dict[str, dict] = {}
    for path in (runs / "snap" / f"aerials_{who}.partial.jsonl", docs / f"aerials_{who}.partial.jsonl",
                 *sorted((runs / "per_image").glob(f"{who}_*.partial.jsonl"))):
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                out[Path(e["image"]).name] = {int(q): p for q, p in e["points"].items()}
    for path in sorted((runs / "per_image").glob(f"{who}_*.json")):
        r = json.loads(path.read_text())
        if r.get("images") == 1:
            name = f"2.2.{path.stem.split('_')[-1]}.png"
            out[name] = {p["quality"]: p for p in r["curves"]["aecli"]}
    return out


def _from_records(docs: Path, runs: Path, data: Path) -> tuple[dict, dict]:
    """When a sweep has not finished: both models' curves on the images both have finished, and the
    WebP and AVIF curves measured here on those images (as `aecli eval` measures them)."""
    import numpy as np

    from aecli.eval.codec_eval import BASELINE_QUALITIES
    from aecli.images.decode import read_image

    a, h = _images(docs, runs, "adapted"), _images(docs, runs, "hpc")
    common = sorted(set(a) & set(h))
    if not common:
        raise SystemExit("no image measured for both models yet")

    def mean_curve(points):
        return [{"quality": q, **{k: float(np.mean([points[i][q][k] for i in common])) for k in ("bpp", "psnr", "ms_ssim")}}
                for q in sorted(points[common[0]])]

    images = [read_image(data / i).rgb for i in common]
    curves = {"aecli": mean_curve(a)}
    for b in ("webp", "avif"):
        curves[b] = [{"quality": p.quality, "bpp": p.bpp, "psnr": p.psnr, "ms_ssim": p.ms_ssim}
                     for p in rd.baseline_sweep(images, b, BASELINE_QUALITIES[b], workers=2)]
    return ({"images": len(common), "data": [str(data)], "curves": curves, "partial": common},
            {"curves": {"aecli": mean_curve(h)}})


def main(docs: Path, model_json: Path, runs: Path = Path("runs/aerials"), data: Path = Path("../shared/data/Aerials/test")) -> None:
    if (docs / "aerials_adapted.json").exists() and (docs / "aerials_hpc.json").exists():
        adapted = json.loads((docs / "aerials_adapted.json").read_text())
        hpc = json.loads((docs / "aerials_hpc.json").read_text())
    else:
        adapted, hpc = _from_records(docs, runs, data)
    meta = json.loads(model_json.read_text())
    a, h = adapted["curves"]["aecli"], hpc["curves"]["aecli"]
    if adapted.get("partial"):
        print(f"Sweeps unfinished: measured on the {len(adapted['partial'])} test images both models have finished "
              f"({', '.join(adapted['partial'])}).\n")
    t = meta["training"]
    print(f"Fine-tuned model `{meta['name']}` (fingerprint {meta['fingerprint']}): {t['steps']} steps of "
          f"{t['batch_size']} crops {t['patch']}x{t['patch']} from `{t.get('init')}`, {t['seconds'] / 60:.1f} min of "
          f"training on {t['hardware']}; measured on {adapted['images']} images of {', '.join(adapted['data'])}.\n")
    print("| codec | vs | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) |")
    print("|---|---|---|---|---|")
    rows = [("fine-tuned", "bundled hpc", h, a)]
    for b, label in (("webp", "WebP (method 6)"), ("avif", "AVIF (speed 6)")):
        if b in adapted["curves"]:
            rows += [("fine-tuned", label, adapted["curves"][b], a), ("bundled hpc", label, adapted["curves"][b], h)]
    for who, vs, ref, test in rows:
        try:
            dpsnr = f"{rd.bd_psnr(*curve(ref, 'psnr'), *curve(test, 'psnr')):+.2f}"
        except ValueError:
            dpsnr = "n/a"
        print(f"| {who} | {vs} | {bd(ref, test):+.1f}% | {dpsnr} | {bd(ref, test, 'msssim'):+.1f}% |")
    print("\n| quality | bundled hpc bpp | PSNR | fine-tuned bpp | PSNR |")
    print("|---|---|---|---|---|")
    for p, q in zip(h, a):
        print(f"| {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {q['bpp']:.4f} | {q['psnr']:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/results"),
         Path(sys.argv[2]) if len(sys.argv) > 2 else Path("runs/aerials/hpc-aerials/hpc-aerials.json"))

"""How coding the image larger lifts the codec's top qualities: the sweep behind levels.SCALED.

    python -m benchmarks.level_scales --out docs/results/level_scales     # writes .md and .json

On the bundled model's held-out CBSD432 images (its metadata lists them; never an evaluation set),
every gain vector from --min-gain up is used at every coding scale of --scales (eighths: 8 = the
image's own size): the image is upsampled (Lanczos) to the scale, coded, decoded and scaled back
down, as `aecli compress`/`decompress` do for a level with that scale (aecli/codec/levels.py).
Gain vectors below --min-gain are coded at scale 8/8 only. Real files, mean bpp (of the source
pixels) and RGB PSNR over the images.

It prints and records the Pareto front over all (gain vector, scale) pairs, and the curve of the
encoder's per-image rule (aecli/codec/levels.py: at quality q, gain vector q at 8/8 or gain vector
q-1 at --rule-scale, whichever has the lower lambda_q x 255^2 x MSE + bpp on that image) with its
BD-rate (pchip) against the plain qualities (gain vector q at 8/8) and against WebP (Pillow,
method 6) on the same images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from aecli import format as latformat
from aecli.codec import levels
from aecli.metrics import psnr
from aecli.eval.rd import bd_rate, encode_decode
from aecli.images.decode import read_image
from aecli.images.image import Image

from .common import RESULTS, SHARED_DATA, progress_bar

WEBP_QUALITIES = (0, 5, 15, 30, 45, 60, 75, 85, 92)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS / "level_scales"), help="output prefix (.md and .json)")
    ap.add_argument("--data", default=str(SHARED_DATA / "CBSD432"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--scales", default="8,9,10,11,12,14,16")
    ap.add_argument("--min-gain", type=int, default=1, help="lowest gain vector (from 1) swept over the scales")
    ap.add_argument("--rule-scale", type=int, default=11, help="the larger scale of the per-image rule")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from aecli.codec.api import load_codec

    torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    meta = codec.files.meta
    names = meta["validation"]["images"]
    scales = [int(s) for s in args.scales.split(",")]
    if levels.UNIT not in scales or args.rule_scale not in scales:
        raise SystemExit(f"--scales must include {levels.UNIT} and the --rule-scale")
    n_gains = len(codec.model.lambdas)
    pairs = [(g, s) for s in scales for g in range(n_gains) if s == levels.UNIT or g >= args.min_gain - 1]
    per = {p: ([], []) for p in pairs}
    webp = {q: ([], []) for q in WEBP_QUALITIES}
    t0 = time.perf_counter()
    with progress_bar() as bar:
        job = bar.add_task("level scales", total=len(names), stats="")
        for name in names:
            img = read_image(Path(args.data) / name)
            x = img.pixels
            h, w = x.shape[:2]
            for s in scales:
                up = Image(pixels=levels.upscale(x, s), alpha=None, mode="RGB", source_bits=8)
                y_base = codec.analyse(up)
                for g in range(n_gains):
                    if (g, s) not in per:
                        continue
                    data = codec.compress(up, codec.qualities[g], {levels.UNIT: y_base}, scale=levels.UNIT)
                    back = codec.decompress(latformat.unpack(data)).pixels
                    back = levels.downscale(back, w, h)
                    per[(g, s)][0].append(8 * len(data) / (w * h))
                    per[(g, s)][1].append(psnr(x, back))
            for q in WEBP_QUALITIES:
                data, back = encode_decode(x, "webp", q)
                webp[q][0].append(8 * len(data) / (w * h))
                webp[q][1].append(psnr(x, back))
            bar.advance(job)
    mean = {p: (float(np.mean(b)), float(np.mean(d))) for p, (b, d) in per.items()}
    wmean = {q: (float(np.mean(b)), float(np.mean(d))) for q, (b, d) in webp.items()}

    pts = sorted((r, d, g, s) for (g, s), (r, d) in mean.items())
    front, best = [], -1.0
    for r, d, g, s in pts:
        if d > best:
            front.append({"gain": g + 1, "scale": s / levels.UNIT, "bpp": round(r, 4), "psnr": round(d, 3)})
            best = d
    plain_curve = np.array([mean[(g, levels.UNIT)] for g in range(n_gains)])
    rule, chosen = [], []
    for g in range(n_gains):  # quality g+1: gain vector g at 8/8, or g-1 at the rule's scale
        lam = codec.model.lambdas[g]
        opts = [(g, levels.UNIT)] + ([(g - 1, args.rule_scale)] if (g - 1, args.rule_scale) in per else [])
        # cost lambda x 255^2 x MSE + bpp, MSE on [0, 1] = 10^(-PSNR/10)
        picks = [min(opts, key=lambda p: lam * 255**2 * 10 ** (-per[p][1][i] / 10) + per[p][0][i])
                 for i in range(len(names))]
        rule.append((float(np.mean([per[p][0][i] for i, p in enumerate(picks)])),
                     float(np.mean([per[p][1][i] for i, p in enumerate(picks)]))))
        chosen.append(sum(p != (g, levels.UNIT) for p in picks))
    rule_curve = np.array(rule)
    webp_curve = np.array([wmean[q] for q in WEBP_QUALITIES])

    def bd(ref, test):
        return round(bd_rate(ref[:, 0], ref[:, 1], test[:, 0], test[:, 1], method="pchip"), 2)

    result = {
        "command": "python -m benchmarks.level_scales " + " ".join(sys.argv[1:]),
        "model": codec.name, "fingerprint": meta.get("fingerprint"), "images": names,
        "seconds": round(time.perf_counter() - t0, 1), "threads": args.threads,
        "points": [{"gain": g + 1, "scale": s / levels.UNIT, "bpp": round(r, 4), "psnr": round(d, 3)}
                   for (g, s), (r, d) in sorted(mean.items())],
        "webp": [{"quality": q, "bpp": round(r, 4), "psnr": round(d, 3)} for q, (r, d) in wmean.items()],
        "front": front,
        # per image (in the order of "images"), for offline comparisons of encoder rules
        "per_image": [{"gain": g + 1, "scale": s / levels.UNIT, "bpp": [round(v, 5) for v in b],
                       "psnr": [round(v, 4) for v in d]} for (g, s), (b, d) in sorted(per.items())],
        "rule": {"scale": args.rule_scale / levels.UNIT,
                 "curve": [{"quality": q, "bpp": round(r, 4), "psnr": round(d, 3), "images_scaled": c}
                           for q, (r, d), c in zip(codec.qualities, rule, chosen)]},
        "bd_rate": {"rule_vs_plain": bd(plain_curve, rule_curve),
                    "plain_vs_webp": bd(webp_curve, plain_curve),
                    "rule_vs_webp": bd(webp_curve, rule_curve)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result, scales))
    print(markdown(result, scales))
    return 0


def markdown(r: dict, scales: list[int]) -> str:
    lines = [f"# Coding scale against gain vector (model `{r['model']}`, fingerprint {r['fingerprint']})", "",
             f"Command: `{r['command']}` ({r['seconds']} s, {r['threads']} threads). "
             f"{len(r['images'])} held-out CBSD432 images ({', '.join(r['images'])}); means over images, "
             "bpp of the source pixels from whole files, RGB PSNR.", "",
             "bpp / PSNR (dB) per gain vector (rows) and coding scale (columns):", ""]
    lines.append("| gain | " + " | ".join(f"{s}/8" for s in scales) + " |")
    lines.append("|---|" + "---|" * len(scales))
    pts = {(p["gain"], p["scale"]): p for p in r["points"]}
    for g in sorted({p["gain"] for p in r["points"]}):
        cells = [f"{pts[(g, s / 8)]['bpp']:.3f} / {pts[(g, s / 8)]['psnr']:.2f}" if (g, s / 8) in pts else ""
                 for s in scales]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += ["", "Pareto front (no other pair gives more dB for fewer bits):", "",
              "| bpp | PSNR | gain | scale |", "|---|---|---|---|"]
    lines += [f"| {p['bpp']:.3f} | {p['psnr']:.2f} | {p['gain']} | {p['scale']:g} |" for p in r["front"]]
    rule = r["rule"]
    lines += ["", f"The encoder's per-image rule (quality q: gain vector q at 1, or q-1 at {rule['scale']:g}, the lower "
              "lambda_q x 255^2 x MSE + bpp):", "",
              "| quality | bpp | PSNR | images coded larger |", "|---|---|---|---|"]
    lines += [f"| {c['quality']} | {c['bpp']:.4f} | {c['psnr']:.2f} | {c['images_scaled']} of {len(r['images'])} |"
              for c in rule["curve"]]
    b = r["bd_rate"]
    lines += ["", "BD-rate (pchip; negative: fewer bits at equal PSNR):", "",
              f"- the rule against the plain qualities: {b['rule_vs_plain']}%",
              f"- the plain qualities against WebP: {b['plain_vs_webp']}%",
              f"- the rule against WebP: {b['rule_vs_webp']}%", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

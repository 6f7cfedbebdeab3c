"""Rate-distortion of Pillow's JPEG, WebP and AVIF on Kodak24, and their BD-rates.

    python -m benchmarks.baselines_kodak --data ../shared/data/Kodak24 --out docs/results/baselines.json

Every image is encoded to real bytes in memory at each quality, decoded, and
measured (bpp from the file size, RGB PSNR, MS-SSIM); each point is the mean of
the per-image values. BD-rates are reported in PSNR (cubic fit, and PCHIP for
reference) and in MS-SSIM dB (-10*log10(1 - MS-SSIM)). Optional --plot and --md
write a PNG (needs matplotlib) and a markdown table.

Codec settings: JPEG optimize=True, 4:2:0; WebP method=6; AVIF Pillow defaults
(speed 6, 4:2:0; --avif-speed to change it).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image, features

from aecli.eval.rd import (
    baseline_sweep,
    bd_psnr,
    bd_rate,
    plot_rd,
    to_markdown,
    write_json,
)

from .common import RESULTS, SHARED_DATA, progress_bar

# Chosen to span roughly 0.1 .. 2 bpp on Kodak for each codec.
QUALITIES = {
    "jpeg": [3, 5, 8, 12, 20, 30, 45, 60, 75, 85],
    "webp": [0, 5, 15, 30, 45, 60, 75, 85],
    "avif": [10, 20, 30, 40, 50, 60, 70, 80],
}
PAIRS = [("jpeg", "webp"), ("jpeg", "avif"), ("webp", "avif")]


def load_images(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".ppm", ".bmp", ".tif", ".tiff"})
    if not paths:
        raise SystemExit(f"no images in {folder}")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def msssim_db(v: float) -> float:
    return -10.0 * math.log10(max(1.0 - v, 1e-12))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "Kodak24")
    ap.add_argument("--out", type=Path, default=RESULTS / "baselines.json")
    ap.add_argument("--plot", type=Path, default=None, help="also write an RD plot (PNG)")
    ap.add_argument("--md", type=Path, default=None, help="also write a markdown table")
    ap.add_argument("--codecs", default="jpeg,webp,avif")
    ap.add_argument("--avif-speed", type=int, default=None, help="AVIF speed (Pillow default 6)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images (quick checks)")
    args = ap.parse_args(argv)

    images = load_images(args.data)[: args.limit]
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    options = {c: {} for c in codecs}
    if args.avif_speed is not None and "avif" in options:
        options["avif"]["speed"] = args.avif_speed

    t0 = time.perf_counter()
    curves = {}
    timings = {}
    total = sum(len(QUALITIES[c]) for c in codecs) * len(images)
    with progress_bar() as progress:
        task = progress.add_task("baselines", total=total, stats="")
        for c in codecs:
            progress.update(task, description=c)
            tc = time.perf_counter()
            curves[c] = baseline_sweep(
                images, c, QUALITIES[c], workers=args.workers, on_step=lambda: progress.advance(task), **options[c]
            )
            timings[c] = time.perf_counter() - tc
    elapsed = time.perf_counter() - t0

    bd = []
    for a, b in PAIRS:
        if a not in curves or b not in curves:
            continue
        ra = [p.bpp for p in curves[a]]
        rb = [p.bpp for p in curves[b]]
        pa = [p.psnr for p in curves[a]]
        pb = [p.psnr for p in curves[b]]
        ma = [msssim_db(p.ms_ssim) for p in curves[a]]
        mb = [msssim_db(p.ms_ssim) for p in curves[b]]
        bd.append(
            {
                "anchor": a,
                "test": b,
                "bd_rate_psnr_cubic_pct": bd_rate(ra, pa, rb, pb, "cubic"),
                "bd_rate_psnr_pchip_pct": bd_rate(ra, pa, rb, pb, "pchip"),
                "bd_psnr_db": bd_psnr(ra, pa, rb, pb, "cubic"),
                "bd_rate_msssim_db_cubic_pct": bd_rate(ra, ma, rb, mb, "cubic"),
                "psnr_overlap_db": [max(min(pa), min(pb)), min(max(pa), max(pb))],
            }
        )

    result = {
        "_about": (
            "Pillow JPEG/WebP/AVIF on Kodak24: per-quality means over images of bpp (8*file bytes/pixels), "
            "RGB PSNR and MS-SSIM; BD-rates of 'test' vs 'anchor' (negative = test smaller). "
            "Produced by python -m benchmarks.baselines_kodak."
        ),
        "dataset": {"folder": str(args.data), "images": len(images)},
        "settings": {
            "jpeg": "quality=q, optimize=True, subsampling 4:2:0 (Pillow default)",
            "webp": "quality=q, method=6",
            "avif": f"quality=q, speed={args.avif_speed if args.avif_speed is not None else '6 (Pillow default)'}, 4:2:0",
        },
        "versions": {
            "python": platform.python_version(),
            "pillow": Image.__version__,
            "libjpeg": features.version("jpg"),
            "libwebp": features.version("webp"),
            "libavif": features.version("avif"),
        },
        "curves": {c: [p.as_dict() for p in pts] for c, pts in curves.items()},
        "bd": bd,
        "seconds": {"total": round(elapsed, 1), **{c: round(t, 1) for c, t in timings.items()}},
        "workers": args.workers,
    }
    write_json(result, args.out)

    rows = [p.as_dict() for pts in curves.values() for p in pts]
    table = to_markdown(rows, ["codec", "quality", "bpp", "psnr", "ms_ssim"])
    bd_table = to_markdown(
        bd, ["anchor", "test", "bd_rate_psnr_cubic_pct", "bd_rate_psnr_pchip_pct", "bd_psnr_db", "bd_rate_msssim_db_cubic_pct"], 2
    )
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(f"## Rate-distortion\n\n{table}\n## BD-rate\n\n{bd_table}", encoding="utf-8")
    if args.plot:
        plot_rd(
            {c: [(p.bpp, p.psnr) for p in pts] for c, pts in curves.items()},
            args.plot,
            f"Pillow codecs on Kodak ({len(images)} images)",
            xlim=(0, 2.2),
        )

    print(bd_table, end="")
    print(f"\n{len(images)} images, {elapsed:.1f} s ({args.workers} workers) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

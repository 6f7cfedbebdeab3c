"""Encode/decode time and peak memory of the codec on CPU, per quality and for a large image.

    python -m benchmarks.speed --image samples/kodim23.png --big-mp 25 --out docs/results/speed.json

Each measurement runs in a fresh Python process, which loads the model, warms up once on a
small image, then times `compress` and `decompress` (model loading excluded; file I/O
excluded) and reports its peak RSS (ru_maxrss, whole process, model and torch included).
The large image is the given image upscaled (bicubic) to about --big-mp megapixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import RESULTS, child_args, machine, peak_rss_mb, progress_bar, run_child


def child(argv: list[str]) -> None:
    """One measurement, in a fresh process (run_child): IMAGE QUALITY MP THREADS -> a JSON line."""
    import time

    import numpy as np
    import torch
    from PIL import Image as P

    from aecli import format as lf
    from aecli.codec.api import load_codec
    from aecli.images.decode import read_image
    from aecli.images.image import Image

    path, quality, mp, threads = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    if threads:
        torch.set_num_threads(threads)
    codec = load_codec(None)
    img = read_image(path)
    if mp > 0:
        h, w = img.pixels.shape[:2]
        s = (mp * 1e6 / (h * w)) ** 0.5
        im = P.fromarray(img.pixels).resize((int(w * s), int(h * s)), P.BICUBIC)
        img = Image(np.asarray(im), None, "RGB", 8)
    warm = Image(img.pixels[:64, :64].copy(), None, "RGB", 8)
    codec.decompress(lf.unpack(codec.compress(warm, quality)))
    t0 = time.perf_counter()
    data = codec.compress(img, quality)
    t1 = time.perf_counter()
    codec.decompress(lf.unpack(data))
    t2 = time.perf_counter()
    h, w = img.pixels.shape[:2]
    print(json.dumps({"quality": quality, "width": w, "height": h, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                      "encode_s": t1 - t0, "decode_s": t2 - t1, "peak_rss_mb": peak_rss_mb(),
                      "threads": torch.get_num_threads()}))


def measure(image: Path, quality: int, mp: float, threads: int) -> dict:
    return run_child("benchmarks.speed", image.resolve(), quality, mp, threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=Path("samples/kodim23.png"))
    ap.add_argument("--qualities", default="", help="comma-separated levels (default: all of the bundled model's)")
    ap.add_argument("--big-mp", type=float, default=25.0, help="megapixels of the large test (0: skip)")
    ap.add_argument("--big-quality", type=int, default=0, help="level of the large test (default: the model's default)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    args = ap.parse_args()
    from aecli.codec.api import load_codec

    codec = load_codec(None)
    qs = [int(q) for q in args.qualities.split(",") if q] or codec.qualities
    args.big_quality = args.big_quality or codec.default_quality
    rows = []
    with progress_bar() as bar:
        job = bar.add_task("speed", total=len(qs) + (1 if args.big_mp > 0 else 0), stats="")
        for q in qs:
            rows.append(measure(args.image, q, 0, args.threads))
            bar.advance(job)
        if args.big_mp > 0:
            rows.append(measure(args.image, args.big_quality, args.big_mp, args.threads))
            bar.advance(job)
    result = {"machine": machine(), "image": str(args.image), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| image | quality | bpp | encode s | decode s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['width']}x{r['height']} | {r['quality']} | {r['bpp']:.3f} | {r['encode_s']:.2f} | {r['decode_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(child(child_args()) if child_args() is not None else main())

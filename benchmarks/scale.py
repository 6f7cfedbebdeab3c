"""Huge images: time per pixel and peak memory of compress, decompress and denoise at 50 MP.

    python -m benchmarks.scale --mp 50 --out docs/results --name scale

A Kodak-sized image (samples/kodim23.png, 768x512) and the same image upscaled (bicubic) to
about --mp megapixels, saved once as PNG. Each (operation, size) runs in a fresh Python
process that loads the model, warms up on a 64x64 crop, reads the PNG (or the .lat), then
times the operation alone (file reading and writing excluded; the median of 5 runs where one
takes under 5 s, else one run) and reports its peak RSS
(ru_maxrss: the whole process, torch, the model and the decoded input included). The large
image's time per pixel is compared with the small one's (goal: at most 1.3x) and its peak RSS
with the 1.5 GB goal.

Both sizes are coded at their own size (`scale=8`): that is the only coding the encoder tries for
an image of more than 16.8 megapixels (aecli/codec/levels.py), and the small image is coded the
same way so that the time per pixel compares like with like (by default the encoder also tries a
Kodak-sized image at 11/8 of its size and keeps the better file: see docs/codec.md).

Writes OUT/NAME.json and OUT/NAME.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .common import RESULTS, ROOT, child_args, machine, peak_rss_mb, progress_bar, run_child, write_report


def child(argv: list[str]) -> None:
    """One measurement, in a fresh process (run_child): OP PNG THREADS -> a JSON line.  compress
    writes PNG.lat, which decompress reads."""
    import time

    import numpy as np
    import torch

    from aecli import format as lf
    from aecli.images.decode import read_image
    from aecli.images.image import Image

    op, path, threads = argv[0], argv[1], int(argv[2])
    if threads:
        torch.set_num_threads(threads)

    def timed(fn):  # the median of 5 runs for a small image, one run for a large one
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
            if runs[-1] > 5:
                break
        return sorted(runs)[len(runs) // 2]

    if op == "denoise":
        from aecli.denoise.api import load_denoiser

        den = load_denoiser(None)
        den.denoise_array(np.full((64, 64, 3), 128, np.uint8), 25.0)
        img = read_image(path)
        t = timed(lambda: den.denoise(img, 25.0))
        h, w = img.pixels.shape[:2]
    else:
        from aecli.codec.api import load_codec

        codec = load_codec(None)
        warm = Image(np.full((64, 64, 3), 128, np.uint8), None, "RGB", 8)
        codec.decompress(lf.unpack(codec.compress(warm, 5)))
        if op == "compress":
            img = read_image(path)
            data = codec.compress(img, 5, scale=8)
            t = timed(lambda: codec.compress(img, 5, scale=8))
            h, w = img.pixels.shape[:2]
            Path(path + ".lat").write_bytes(data)
        else:
            lat = lf.unpack(Path(path + ".lat").read_bytes())
            t = timed(lambda: codec.decompress(lat))
            h, w = lat.height, lat.width
    print(json.dumps({"op": op, "width": w, "height": h, "seconds": t, "us_per_pixel": 1e6 * t / (w * h),
                      "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}))


def measure(op: str, png: Path, threads: int) -> dict:
    return run_child("benchmarks.scale", op, png.resolve(), threads, error=f"{op} on {png.name} failed:")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "samples" / "kodim23.png")
    ap.add_argument("--mp", type=float, default=50.0, help="megapixels of the large image")
    ap.add_argument("--ops", default="compress,decompress,denoise")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="scale")
    args = ap.parse_args()
    from PIL import Image

    from aecli import registry

    ops = [o for o in args.ops.split(",") if o]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.png"
        big = Path(tmp) / "big.png"
        with Image.open(args.image) as im:
            im = im.convert("RGB")
            im.save(small)
            s = (args.mp * 1e6 / (im.width * im.height)) ** 0.5
            im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC).save(big, compress_level=1)
        with progress_bar() as bar:
            job = bar.add_task("scale", total=2 * len(ops), stats="")
            for op in ops:
                for png in (small, big):
                    rows.append(measure(op, png, args.threads))
                    bar.advance(job)
    L = [f"# Huge images: {args.mp:g} MP against {rows[0]['width']}x{rows[0]['height']}", "",
         f"Command: `python -m benchmarks.scale --mp {args.mp:g}`. Machine: {machine()}, "
         f"torch threads {rows[0]['threads']}. Quality 5 for the codec (`{registry.DEFAULTS['codec']}`, the default model), coded at the "
         "image's own size (`scale=8`: the only coding the encoder tries above 16.8 MP, and the small image is coded the same "
         "way; docs/codec.md, \"Coding scale\"), sigma 25 (given) for the denoiser.", "",
         "| operation | image | seconds | us per pixel | ratio to small | peak RSS MB |", "|---|---|---:|---:|---:|---:|"]
    summary = {}
    for op in ops:
        a, b = [r for r in rows if r["op"] == op]
        ratio = b["us_per_pixel"] / a["us_per_pixel"]
        summary[op] = {"time_per_pixel_ratio": ratio, "big_peak_rss_mb": b["peak_rss_mb"]}
        for r, rr in ((a, ""), (b, f"{ratio:.2f}x")):
            L.append(f"| {op} | {r['width']}x{r['height']} | {r['seconds']:.2f} | {r['us_per_pixel']:.3f} | {rr} | {r['peak_rss_mb']:.0f} |")
    L += ["", "Goals: time per pixel at most 1.3x the small image's, peak RSS under 1536 MB."]
    write_report(args.out, args.name, {"machine": machine(), "mp": args.mp, "rows": rows, "summary": summary}, L)
    return 0


if __name__ == "__main__":
    raise SystemExit(child(child_args()) if child_args() is not None else main())

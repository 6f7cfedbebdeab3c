"""Huge images: time per pixel and peak memory of compress, decompress and denoise at 50 MP.

    python benchmarks/scale.py --mp 50 --out docs --name scale

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
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
op, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if threads: torch.set_num_threads(threads)
def timed(fn):  # the median of 5 runs for a small image, one run for a large one
    runs = []
    for _ in range(5):
        t0 = time.perf_counter(); fn(); runs.append(time.perf_counter() - t0)
        if runs[-1] > 5: break
    return sorted(runs)[len(runs) // 2]
from aecli.imageio import read_image, Image
from aecli import format as lf
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
        open(path + ".lat", "wb").write(data)
    else:
        lat = lf.unpack(open(path + ".lat", "rb").read())
        t = timed(lambda: codec.decompress(lat))
        h, w = lat.height, lat.width
print(json.dumps({"op": op, "width": w, "height": h, "seconds": t, "us_per_pixel": 1e6 * t / (w * h),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
"""


def measure(op: str, png: Path, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", CHILD, op, str(png), str(threads)], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{op} on {png.name} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "samples" / "kodim23.png")
    ap.add_argument("--mp", type=float, default=50.0, help="megapixels of the large image")
    ap.add_argument("--ops", default="compress,decompress,denoise")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--name", default="scale")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from PIL import Image

    from aecli import registry
    from aecli.progress import progress_bar

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
         f"Command: `python benchmarks/scale.py --mp {args.mp:g}`. Machine: {platform.machine()}, {os.cpu_count()} cores, "
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                                            "mp": args.mp, "rows": rows, "summary": summary}, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

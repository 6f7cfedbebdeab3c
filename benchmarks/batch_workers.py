"""Folder batches: images per second with 1 and more workers (`aecli compress/denoise DIR OUT -j N`).

    python -m benchmarks.batch_workers --count 1000 --workers 1,2 --out docs/results --name batch

Makes --count images of --size x --size pixels (crops of the bundled samples, shifted so that no
two are equal) in a temporary folder, then runs the real command line on the whole folder once
per worker count, each a fresh process (one model load, skip-existing off with a fresh output
folder), and reports wall-clock images per second including start-up and model loading.
Also checks that every worker count wrote the same bytes.

Writes OUT/NAME.json and OUT/NAME.md.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import OWN_SIZE, RESULTS, ROOT, machine, progress_bar, write_report


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    sources = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "samples").glob("*.png"))]
    folder.mkdir(parents=True)
    for i in range(count):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        k = i // len(sources)
        top = (k * 7) % (h - size)
        left = (k * 13) % (w - size)
        Image.fromarray(src[top : top + size, left : left + size]).save(folder / f"{i:05d}.png")


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--commands", default="compress,denoise")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="batch")
    args = ap.parse_args()
    from aecli.registry import DEFAULTS

    workers = [int(w) for w in args.workers.split(",") if w]
    commands = [c for c in args.commands.split(",") if c]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, progress_bar() as bar:
        src = Path(tmp) / "in"
        make_images(src, args.count, args.size)
        job = bar.add_task("batch", total=len(commands) * len(workers), stats="")
        for cmd in commands:
            for j in workers:
                dst = Path(tmp) / f"{cmd}-{j}"
                argv = [sys.executable, "-m", "aecli", cmd, str(src), str(dst), "--workers", str(j), "--quiet"]
                if cmd == "denoise":
                    argv += ["--sigma", "25"]
                if cmd == "compress":  # one coding per image, as recorded in docs/results/batch.md (docs/codec.md, "Coding scale")
                    argv += ["--scale", "1"]
                t0 = time.perf_counter()
                r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)  # this checkout's aecli
                seconds = time.perf_counter() - t0
                if r.returncode:
                    raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr}")
                rows.append({"command": cmd, "workers": j, "images": args.count, "seconds": seconds,
                             "images_per_s": args.count / seconds, "outputs": digest(dst)})
                bar.advance(job)
    L = [f"# Folder batches: {args.count} images of {args.size}x{args.size}", "",
         f"Command: `python -m benchmarks.batch_workers --count {args.count} --workers {args.workers}`. "
         f"Machine: {machine()}. Wall-clock time of the whole command "
         f"(start-up and one model load included), with the default models (codec `{DEFAULTS['codec']}`, denoiser "
         f"`{DEFAULTS['denoise']}`); the denoiser is given sigma 25, and `compress` codes each image at its own size "
         f"{OWN_SIZE}.", "",
         "| command | workers | seconds | images/s | speed-up | same outputs as 1 worker |", "|---|---:|---:|---:|---:|---|"]
    for cmd in commands:
        base = next(r for r in rows if r["command"] == cmd and r["workers"] == workers[0])
        for r in (r for r in rows if r["command"] == cmd):
            L.append(f"| {cmd} | {r['workers']} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | "
                     f"{r['images_per_s'] / base['images_per_s']:.2f}x | {'yes' if r['outputs'] == base['outputs'] else 'NO'} |")
    write_report(args.out, args.name, {"machine": machine(), "rows": rows}, L)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

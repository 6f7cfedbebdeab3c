"""Real camera noise: PSNR/SSIM on CC15 of the noisy input, our models and CBM3D.

    python -m benchmarks.denoise_real --out docs/results --name denoise_real
    python -m benchmarks.denoise_real --limit 3 --no-cbm3d --out /tmp --name quick     # a quick check

CC15 (../shared/data/CC15, Nam et al. CVPR 2016): 15 real noisy 512x512 crops from three cameras at
ISO 1600-6400 (`*_real.png`), each against the mean of many shots of the same scene (`*_mean.png`).
It is a validation set only: no model is trained or chosen on it (docs/denoise_real.md).

Rows, on every image:
* the noisy input;
* `dn` blind (the default of `aecli denoise` before `dn-real`: one sigma from the classical
  estimate of aecli/denoise/noise.py);
* `dn` at each fixed --sigmas level (one level for every image: "the best single sigma" is the best
  of these means, which needs the reference images, so no user can choose it);
* `dn-real` (the default of `aecli denoise` now: its own noise map), at each --strengths;
* CBM3D (the `bm3d` package, bm3d_rgb) given a noise level from a standard estimator: scikit-image's
  estimate_sigma (wavelet median absolute deviation, Donoho & Johnstone), averaged over the channels.
  Skipped with --no-cbm3d or when the package is missing.

Metrics on the 8-bit outputs: PSNR over all channels, SSIM (Gaussian window 11, sigma 1.5) averaged
over channels (aecli.metrics). Times: in-process seconds per image on this machine, with
--threads torch threads (2 by default, this machine's cores).

Writes OUT/NAME.json (per-image numbers) and OUT/NAME.md (the table).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from aecli.metrics import psnr, ssim

from .common import RESULTS, SHARED_DATA, progress_bar


def pairs(folder: Path, limit: int | None) -> list[tuple[Path, Path]]:
    found = sorted(folder.glob("*_real.png"))[:limit]
    return [(p, p.with_name(p.name.replace("_real", "_mean"))) for p in found]


def load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def cbm3d(noisy: np.ndarray) -> tuple[np.ndarray, float] | None:
    try:
        import bm3d
        from skimage.restoration import estimate_sigma
    except ImportError:
        return None
    z = noisy.astype(np.float64) / 255.0
    sigma = float(np.mean(estimate_sigma(z, channel_axis=-1)))
    out = np.asarray(bm3d.bm3d_rgb(z, sigma))
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), sigma * 255.0


def methods(args) -> list[tuple[str, object]]:
    """(row name, function noisy -> (output, note)) in table order."""
    from aecli.denoise.api import load_denoiser

    dn = load_denoiser(args.gaussian_model)
    real = load_denoiser(args.model)
    rows: list[tuple[str, object]] = [("noisy input", lambda y: (y, ""))]

    def run(den, sigma, strength=1.0):
        def f(y):
            out, level = den.denoise_array(y, sigma, strength=strength)
            return out, level.summary()
        return f

    rows.append((f"`{dn.name}` blind (the old default)", run(dn, None)))
    rows += [(f"`{dn.name}` --sigma {s:g}", run(dn, float(s))) for s in args.sigmas]
    rows += [(f"`{real.name}`" + (" (the default)" if k == 1.0 else f" --strength {k:g}"), run(real, None, k))
             for k in args.strengths]
    if not args.no_cbm3d:
        def f(y):
            r = cbm3d(y)
            if r is None:
                raise RuntimeError("bm3d or scikit-image missing")
            return r[0], f"sigma {r[1]:.2f} (skimage estimate)"
        rows.append(("CBM3D, sigma from skimage's estimate", f))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "CC15")
    ap.add_argument("--model", default="dn-real")
    ap.add_argument("--gaussian-model", default="dn")
    ap.add_argument("--sigmas", type=float, nargs="*", default=[5, 10, 15, 20])
    ap.add_argument("--strengths", type=float, nargs="*", default=[1.0, 0.6, 1.5])
    ap.add_argument("--no-cbm3d", action="store_true")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="denoise_real")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    images = pairs(args.data, args.limit)
    if not images:
        raise SystemExit(f"no *_real.png images under {args.data}")
    rows = methods(args)
    results = {name: [] for name, _ in rows}
    with progress_bar() as bar:
        job = bar.add_task("CC15", total=len(images) * len(rows), stats="")
        for noisy_path, clean_path in images:
            noisy, clean = load(noisy_path), load(clean_path)
            for name, fn in rows:
                t0 = time.perf_counter()
                out, note = fn(noisy)
                seconds = time.perf_counter() - t0
                results[name].append({"image": noisy_path.name, "psnr": psnr(out, clean), "ssim": ssim(out, clean),
                                      "seconds": seconds, "note": note})
                bar.update(job, advance=1, stats=noisy_path.name)
    write(args, results)
    return 0


def write(args, results: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"data": str(args.data), "images": len(next(iter(results.values()))), "threads": args.threads,
            "machine": f"{platform.machine()}, {platform.processor() or 'CPU'}",
            "command": "python -m benchmarks.denoise_real " + " ".join(sys.argv[1:])}
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = [f"# Real camera noise: CC15 ({meta['images']} images)", "",
             f"`{meta['command']}`; {meta['threads']} torch threads on {meta['machine']}.", "",
             "| method | PSNR (dB) | SSIM | s per image |", "|---|---|---|---|"]
    for name, rs in results.items():
        lines.append(f"| {name} | {np.mean([r['psnr'] for r in rs]):.2f} | {np.mean([r['ssim'] for r in rs]):.4f} "
                     f"| {np.mean([r['seconds'] for r in rs]):.2f} |")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())

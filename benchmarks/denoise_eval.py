"""Denoising benchmark: PSNR/SSIM of our model next to CBM3D, non-local means and published numbers.

    python -m benchmarks.denoise_eval --model dn --out docs/results --name denoise_eval
    python -m benchmarks.denoise_eval --model runs/dn --limit 2 --baseline-limit 1 --big-mp 0   # a quick check

Protocol
--------
* Sets (under --data, default ../shared/data): colour CBSD68, Kodak24_crop500, McMaster;
  grayscale Set12, BSD68. Images in sorted order; --limit N takes the first N of each set.
* Noise: white Gaussian at each --sigmas level (0-255 scale). The noise of one image at one
  level is numpy default_rng([seed, crc32(set/file), sigma]), so it does not depend on which
  sets or limits are chosen. Two protocols on the same noise:
    float    the noisy values unclipped and unrounded (the papers' protocol)
    clipped  the noisy image rounded and clipped to 8 bits (what a user's noisy file holds)
* Ours: with the true sigma (non-blind), and blind (sigma estimated from the noisy image by
  aecli.denoise.noise.estimate_sigma; its mean is reported).
* Baselines on the first --baseline-limit images of each set (both protocols, true sigma):
  CBM3D / BM3D from the `bm3d` package (bm3d_rgb in the opponent colour space; bm3d for gray),
  and scikit-image's non-local means (fast mode, patch 5, distance 6, h = 0.8 sigma). Each
  is optional: if its package is missing the column is skipped and the report says so.
  Our numbers on the same subset are reported beside them.
* Published: the table in ../shared/reference/denoise_published.md (float protocol), beside
  ours on the full sets. Its Kodak24 rows are the 500x500 crops (our Kodak24_crop500).
* Metrics on the 8-bit outputs (rounded, clipped): PSNR over all channels jointly, SSIM
  (Gaussian window 11, sigma 1.5) averaged over channels, from aecli.metrics; the
  numbers are means over images.
* Speed and memory (--speed-image, --big-mp): a fresh process per measurement loads the
  model, warms up on a small image, then times denoising (known sigma, and blind including the
  estimate) of one 481x321 image and of the same image upscaled to --big-mp megapixels;
  the peak RSS (ru_maxrss) of the whole process is reported.

Writes OUT/NAME.json (every per-image number) and OUT/NAME.md (the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from aecli.denoise.noise import add_gaussian
from aecli.metrics import psnr, ssim

from .common import RESULTS, SHARED_DATA, SHARED_REFERENCE, child_args, peak_rss_mb, progress_bar, run_child

COLOUR_SETS = ("CBSD68", "Kodak24_crop500", "McMaster")
GRAY_SETS = ("Set12", "BSD68")
PUBLISHED_NAME = {"Kodak24_crop500": "Kodak24"}  # our folder -> the row name in the published table
PUBLISHED_METHOD = {"BM3D": "(C)BM3D", "CBM3D": "(C)BM3D", "DnCNN": "(C)DnCNN", "CDnCNN": "(C)DnCNN"}  # colour / gray twins


# --------------------------------------------------------------------------------------
# baselines (optional packages)


def _bm3d():
    try:
        import bm3d  # noqa: F401

        return bm3d
    except ImportError:
        return None


def _nlm():
    try:
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means
    except ImportError:
        return None


def run_bm3d(bm3d, noisy: np.ndarray, sigma: float) -> np.ndarray:
    z = noisy.astype(np.float64) / 255.0
    out = bm3d.bm3d_rgb(z, sigma / 255.0) if z.ndim == 3 else bm3d.bm3d(z, sigma / 255.0)
    return to_u8(np.asarray(out) * 255.0)


def run_nlm(nlm, noisy: np.ndarray, sigma: float) -> np.ndarray:
    z = noisy.astype(np.float64) / 255.0
    s = sigma / 255.0
    out = nlm(z, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6,
              channel_axis=-1 if z.ndim == 3 else None, preserve_range=True)
    return to_u8(out * 255.0)


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# published numbers


def read_published(path: Path) -> dict:
    """{set: {method: {sigma: psnr}}} from the markdown tables ('| set | A | B |' then 'a / b / c' cells)."""
    if not path.exists():
        return {}
    out: dict = {}
    header = None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.strip().startswith("|") else None
        if not cells:
            header = None
            continue
        if cells[0] == "set":
            header = cells
            continue
        if header is None or set(cells[0]) <= set("-: "):
            continue
        for method, cell in zip(header[1:], cells[1:]):
            vals = re.findall(r"\d+(?:\.\d+)?", cell)
            if len(vals) == 3:
                method = PUBLISHED_METHOD.get(method, method)
                out.setdefault(cells[0], {})[method] = dict(zip((15, 25, 50), map(float, vals)))
    return out


# --------------------------------------------------------------------------------------
# evaluation


def noise_for(clean: np.ndarray, seed: int, key: str, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(float noisy, 8-bit clipped noisy) from the same noise."""
    f = add_gaussian(clean, sigma, [seed, zlib.crc32(key.encode()), int(round(sigma * 100))], clip=False)
    return f, to_u8(f)


def list_set(data: Path, name: str, limit: int | None) -> list[Path]:
    from aecli.train.data import list_images

    folder = data / name
    if not folder.is_dir():
        return []
    files = list_images(folder)
    return files[:limit] if limit else files


def evaluate(args, den, bar, job) -> list[dict]:
    from aecli.images.decode import read_image

    bm3d = _bm3d() if "cbm3d" in args.baselines else None
    nlm = _nlm() if "nlm" in args.baselines else None
    rows = []
    for set_name in args.sets:
        gray_set = set_name in GRAY_SETS
        for idx, path in enumerate(list_set(args.data, set_name, args.limit)):
            clean = read_image(path).pixels
            if gray_set and clean.ndim == 3:
                clean = to_u8(clean @ np.array([0.299, 0.587, 0.114]))
            for sigma in args.sigmas:
                noisy = dict(zip(("float", "clipped"), noise_for(clean, args.seed, f"{set_name}/{path.name}", sigma)))
                for proto in args.protocols:
                    y = noisy[proto]
                    row = {"set": set_name, "image": path.name, "sigma": sigma, "protocol": proto,
                           "subset": idx < args.baseline_limit}
                    t0 = time.perf_counter()
                    out, _ = den.denoise_array(y, sigma)
                    row["ours_s"] = time.perf_counter() - t0
                    row["ours_psnr"], row["ours_ssim"] = psnr(out, clean), ssim(out, clean)
                    if args.blind:
                        out, est = den.denoise_array(y, None)
                        row["blind_psnr"], row["blind_ssim"], row["sigma_est"] = psnr(out, clean), ssim(out, clean), est.sigma
                    if row["subset"]:
                        for name, fn, mod in (("cbm3d", run_bm3d, bm3d), ("nlm", run_nlm, nlm)):
                            if mod is None:
                                continue
                            t0 = time.perf_counter()
                            out = fn(mod, y, sigma)
                            row[f"{name}_s"] = time.perf_counter() - t0
                            row[f"{name}_psnr"], row[f"{name}_ssim"] = psnr(out, clean), ssim(out, clean)
                    rows.append(row)
                    bar.advance(job)
    return rows


def mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]  # a blind model with a noise map has no one sigma
    return float(np.mean(vals)) if vals else None


def group(rows: list[dict], **match) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(args, rows: list[dict], published: dict, missing: list[str], speed: list[dict], meta: dict) -> str:
    lines = [
        "# Denoising benchmark",
        "",
        f"Model `{meta['model']}` (fingerprint {meta['fingerprint']}, {meta['parameters']} parameters, "
        f"{meta['steps']} training steps on {meta['train_data']}). Machine: {meta['machine']}. "
        f"Noise seed {args.seed}; " + (f"first {args.limit} images per set; " if args.limit else "") +
        f"generated by `python -m benchmarks.denoise_eval` on {meta['date']}.",
        "",
        "PSNR (dB) / SSIM, means over images. 'known': the true sigma is given; 'blind': sigma estimated "
        "from the noisy image (mean estimate in the last column).",
    ]
    for m in missing:
        lines += ["", f"Note: {m}"]
    pub_methods = list(dict.fromkeys(m for s in published.values() for m in s))
    for proto in args.protocols:
        title = {"float": "Float noise (the papers' protocol)", "clipped": "8-bit clipped noisy files (what a user has)"}[proto]
        head = ["set", "sigma", "images", "known PSNR", "known SSIM", "blind PSNR", "blind SSIM", "est. sigma"]
        if proto == "float":
            head += [f"{m} (published)" for m in pub_methods]
        lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for set_name in args.sets:
            for sigma in args.sigmas:
                g = group(rows, set=set_name, sigma=sigma, protocol=proto)
                if not g:
                    continue
                cells = [set_name, f"{sigma:g}", str(len(g)), fmt(mean(g, "ours_psnr")), fmt(mean(g, "ours_ssim"), 4),
                         fmt(mean(g, "blind_psnr")), fmt(mean(g, "blind_ssim"), 4), fmt(mean(g, "sigma_est"), 1)]
                if proto == "float":
                    pub = published.get(PUBLISHED_NAME.get(set_name, set_name), {})
                    cells += [fmt(pub.get(m, {}).get(int(sigma))) for m in pub_methods]
                lines.append("| " + " | ".join(cells) + " |")
    sub = [r for r in rows if r["subset"]]
    if sub and any(k in r for r in sub for k in ("cbm3d_psnr", "nlm_psnr")):
        lines += ["", f"## Baselines on the same subset (first {args.baseline_limit} images of each set, true sigma)", "",
                  "| set | sigma | protocol | images | ours PSNR / SSIM | CBM3D PSNR / SSIM | NLM PSNR / SSIM | s/image ours / CBM3D / NLM |",
                  "|---|---|---|---|---|---|---|---|"]
        for set_name in args.sets:
            for sigma in args.sigmas:
                for proto in args.protocols:
                    g = group(sub, set=set_name, sigma=sigma, protocol=proto)
                    if not g:
                        continue
                    pair = lambda k: f"{fmt(mean(g, k + '_psnr'))} / {fmt(mean(g, k + '_ssim'), 4)}"  # noqa: E731
                    secs = " / ".join(fmt(mean(g, k + "_s"), 2) for k in ("ours", "cbm3d", "nlm"))
                    lines.append(f"| {set_name} | {sigma:g} | {proto} | {len(g)} | {pair('ours')} | {pair('cbm3d')} | {pair('nlm')} | {secs} |")
    if speed:
        lines += ["", "## Speed and memory (CPU)", "",
                  "| image | megapixels | threads | known sigma s | blind s | peak RSS MB |", "|---|---|---|---|---|---|"]
        for s in speed:
            lines.append(f"| {s['width']}x{s['height']} | {s['width'] * s['height'] / 1e6:.2f} | {s['threads']} | "
                         f"{s['known_s']:.2f} | {s['blind_s']:.2f} | {s['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# speed and memory, each in a fresh process

def child(argv: list[str]) -> None:
    """One measurement, in a fresh process (run_child): MODEL IMAGE MP THREADS -> a JSON line."""
    import torch
    from PIL import Image as P

    from aecli.denoise.api import load_denoiser
    from aecli.images.decode import read_image

    model, path, mp, threads = argv[0], argv[1], float(argv[2]), int(argv[3])
    if threads:
        torch.set_num_threads(threads)
    den = load_denoiser(model)
    px = read_image(path).pixels
    if mp > 0:
        h, w = px.shape[:2]
        s = (mp * 1e6 / (h * w)) ** 0.5
        px = np.asarray(P.fromarray(px).resize((round(w * s), round(h * s)), P.BICUBIC))
    noisy = add_gaussian(px, 25, 0)
    den.denoise_array(noisy[:64, :64], 25)
    t0 = time.perf_counter()
    den.denoise_array(noisy, 25)
    t1 = time.perf_counter()
    den.denoise_array(noisy, None)
    t2 = time.perf_counter()
    print(json.dumps({"width": px.shape[1], "height": px.shape[0], "known_s": t1 - t0, "blind_s": t2 - t1,
                      "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}))


def measure_speed(model: str, image: Path, mp: float, threads: int) -> dict:
    return run_child("benchmarks.denoise_eval", model, image.resolve(), mp, threads, error="speed measurement failed")


# --------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or path (default: the bundled 'dn')")
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--sets", default=",".join(COLOUR_SETS + GRAY_SETS))
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--protocols", default="float,clipped")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0: all)")
    ap.add_argument("--baselines", default="cbm3d,nlm", help="comma-separated subset of cbm3d,nlm; empty for none")
    ap.add_argument("--baseline-limit", type=int, default=3, help="images per set for the baselines (CBM3D is slow)")
    ap.add_argument("--no-blind", dest="blind", action="store_false", help="skip the blind (estimated sigma) runs")
    ap.add_argument("--published", type=Path, default=SHARED_REFERENCE / "denoise_published.md")
    ap.add_argument("--speed-image", type=Path, default=None, help="481x321 image for speed (default: first CBSD68 image)")
    ap.add_argument("--big-mp", type=float, default=12.0, help="megapixels of the large speed test (0: skip)")
    ap.add_argument("--no-speed", dest="speed", action="store_false")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="denoise_eval")
    args = ap.parse_args()
    args.sets = [s for s in args.sets.split(",") if s]
    args.sigmas = [float(s) for s in args.sigmas.split(",") if s]
    args.protocols = [p for p in args.protocols.split(",") if p]
    args.baselines = [b for b in args.baselines.split(",") if b]
    bad = [p for p in args.protocols if p not in ("float", "clipped")] + [b for b in args.baselines if b not in ("cbm3d", "nlm")]
    if bad:
        ap.error(f"unknown protocol or baseline: {bad[0]}")

    import torch

    from aecli.denoise.api import load_denoiser
    from aecli.errors import UserError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        den = load_denoiser(args.model)
    except UserError as exc:
        raise SystemExit(f"denoise_eval: {exc}")
    missing = []
    if "cbm3d" in args.baselines and _bm3d() is None:
        missing.append("the `bm3d` package is not installed: the CBM3D column is skipped (pip install bm3d).")
    if "nlm" in args.baselines and _nlm() is None:
        missing.append("scikit-image is not installed: the non-local means column is skipped (pip install scikit-image).")
    absent = [s for s in args.sets if not list_set(args.data, s, 1)]
    if absent:
        missing.append(f"no images found for {', '.join(absent)} under {args.data}: skipped.")
    for m in missing:
        print(f"denoise_eval: {m}", file=sys.stderr)

    total = sum(len(list_set(args.data, s, args.limit)) for s in args.sets) * len(args.sigmas) * len(args.protocols)
    with progress_bar() as bar:
        job = bar.add_task("denoise_eval", total=total, stats="")
        rows = evaluate(args, den, bar, job)

    speed = []
    if args.speed:
        image = args.speed_image or next(iter(list_set(args.data, "CBSD68", 1)), None)
        if image is None:
            print("denoise_eval: no speed image (give --speed-image): speed skipped", file=sys.stderr)
        else:
            spec = args.model or "dn"
            speed.append(measure_speed(spec, image, 0, args.threads))
            if args.big_mp > 0:
                speed.append(measure_speed(spec, image, args.big_mp, args.threads))

    m = den.files.meta
    meta = {"model": den.name, "fingerprint": m.get("fingerprint"), "parameters": sum(p.numel() for p in den.model.parameters()),
            "steps": m.get("training", {}).get("steps", "?"), "train_data": m.get("training", {}).get("data", "?"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d")}
    published = read_published(args.published)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"meta": meta, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "notes": missing, "rows": rows, "speed": speed, "published": published}
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(args, rows, published, missing, speed, meta)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(child(child_args()) if child_args() is not None else main())

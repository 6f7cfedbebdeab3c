"""The README's denoising picture: crops of clean | noisy | CBM3D | aecli side by side.

    python -m scripts.denoise_picture                       # writes docs/results/denoise_example.png
    python -m scripts.denoise_picture --image samples/kodim23.png --sigma 25 --crop 96,112,256
    python -m scripts.denoise_picture --camera --out docs/results/denoise_real_example.png   # camera noise, dn-real

--camera: the noise of a simulated camera instead (aecli/denoise/degrade.py's camera pipeline:
sensor noise on a Bayer mosaic, demosaicing, colour matrix, tone curve, chroma noise reduction,
JPEG; torch seed --seed), the clean panel is that pipeline's clean rendering, aecli runs its
default for real photographs (`dn-real`, its own noise map) and CBM3D gets the noise level of a
standard estimator (scikit-image's estimate_sigma), as a user without the true level would.
(The real noisy photographs of CC15 may not be copied into the project, so the picture is simulated;
docs/denoise_real.md has the measured CC15 table.)

The noisy crop gets white Gaussian noise (numpy default_rng(--seed)), rounded and clipped to
8 bits like a real noisy file; aecli denoises it blind (the noise level is estimated) with the
bundled model, CBM3D (the `bm3d` package, if installed) is given the true sigma. Each panel is
labelled with its PSNR against the clean crop; panels are upscaled --zoom times (nearest) so
that the texture is visible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aecli.denoise.api import load_denoiser
from aecli.denoise.noise import add_gaussian
from aecli.metrics import psnr
from tools.paths import RESULTS, ROOT


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray | None:
    try:
        import bm3d
    except ImportError:
        return None
    out = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255.0, sigma / 255.0)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def camera_noise(clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(clean rendering, noisy 8-bit, the noise level scikit-image estimates) from the camera pipeline."""
    import torch
    from skimage.restoration import estimate_sigma

    from aecli.denoise.degrade import degrade

    x = torch.from_numpy(clean.copy()).permute(2, 0, 1)[None].float() / 255
    target, noisy, _ = degrade(x, torch.Generator().manual_seed(seed), {"p_gauss": 0.0, "p_clean": 0.0})
    to_u8 = lambda t: np.clip(np.rint(t[0].permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)  # noqa: E731
    noisy = to_u8(noisy)
    return to_u8(target), noisy, float(np.mean(estimate_sigma(noisy / 255.0, channel_axis=-1))) * 255


def panel(pixels: np.ndarray, label: str, zoom: int) -> Image.Image:
    im = Image.fromarray(pixels)
    im = im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
    bar = 28
    out = Image.new("RGB", (im.width, im.height + bar), "white")
    out.paste(im, (0, bar))
    draw = ImageDraw.Draw(out)
    try:
        font = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    draw.text((6, 4), label, fill="black", font=font)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, default=ROOT / "samples" / "kodim23.png")
    ap.add_argument("--crop", default="96,300,192", help="TOP,LEFT,SIZE in pixels")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--camera", action="store_true", help="simulated camera noise, dn-real (see above)")
    ap.add_argument("--out", type=Path, default=RESULTS / "denoise_example.png")
    args = ap.parse_args(argv)

    top, left, size = (int(v) for v in args.crop.split(","))
    with Image.open(args.image) as im:
        clean = np.asarray(im.convert("RGB"))[top : top + size, left : left + size]
    if args.camera:
        clean, noisy, sigma = camera_noise(clean, args.seed)
        ours, est = load_denoiser("dn-real").denoise_array(noisy)
        what = f"camera noise (est. sigma {sigma:.1f})"
    else:
        noisy, sigma = add_gaussian(clean, args.sigma, args.seed, clip=True), args.sigma
        ours, est = load_denoiser().denoise_array(noisy)
        what = f"sigma {args.sigma:g}"
    panels = [panel(clean, "clean", args.zoom),
              panel(noisy, f"noisy, {what}: {psnr(noisy, clean):.2f} dB", args.zoom)]
    theirs = cbm3d(noisy, sigma)
    if theirs is not None:
        panels.append(panel(theirs, f"CBM3D: {psnr(theirs, clean):.2f} dB", args.zoom))
    panels.append(panel(ours, f"aecli (blind): {psnr(ours, clean):.2f} dB", args.zoom))
    gap = 8
    w = sum(p.width for p in panels) + gap * (len(panels) - 1)
    sheet = Image.new("RGB", (w, panels[0].height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    sheet.save(tmp, format="PNG", optimize=True)
    tmp.replace(args.out)
    line = f"{args.image.name} crop {args.crop}, {what}, aecli {est.summary()}: noisy {psnr(noisy, clean):.2f} dB"
    if theirs is not None:
        line += f", CBM3D {psnr(theirs, clean):.2f} dB"
    print(f"{line}, aecli {psnr(ours, clean):.2f} dB -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

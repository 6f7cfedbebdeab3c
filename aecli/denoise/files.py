"""`aecli denoise` and `aecli noise` on files, pipes and folders.

A file or '-' in gives one output (a file, or '-' for stdout, PNG there); a folder in gives a
folder out with the same relative paths and names (subfolders mirrored, each file written in
the format of its own extension, PNG for extensions we cannot write such as .gif), outputs that
exist skipped unless --force, one line per bad file, a summary, and exit code 1 if any failed.
Outputs are lossless where the format allows it (PNG, TIFF, BMP, and WebP unless --output-quality
is given); JPEG is written at quality 95 or --output-quality. The source's ICC profile and EXIF go
into the output. The input is never overwritten.

This module imports no torch: `aecli noise` runs on numpy alone, and `aecli denoise` loads
the model (and torch) only once the arguments have been checked.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

from .. import batch
from ..atomic import check_output, write_output
from ..errors import UserError
from ..images.decode import read_image
from ..images.encode import WRITE_EXTS, encode_image, format_from_path, save_options
from ..images.image import Image
from ..images.walk import IMAGE_EXTS
from ..progress import note, set_verbose

from .noise import Sigma

DEFAULT_SUFFIX = "-denoised"


def _is_pipe(p: str) -> bool:
    return p == "-"


def _encode(img: Image, dst: str, quality: int | None = None, metadata: dict | None = None) -> bytes:
    fmt = format_from_path(dst, default="png")
    keep = {k: v for k, v in (metadata or {}).items() if k in ("icc", "exif")}
    return encode_image(img, fmt, metadata=keep, **save_options(fmt, quality))


def _suffix_for(src: Path) -> str:
    """The output keeps the input's extension when we can write it, else becomes .png."""
    return src.suffix if src.suffix.lower() in WRITE_EXTS else ".png"


def _plan(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs of a folder batch: images in, images out, so the output folder may not be
    the input folder, and files under it are not inputs."""
    return batch.plan(src, dst, IMAGE_EXTS, _suffix_for, guard_inputs=True)


def _check_single(src: str, dst: str, force: bool, derived: bool = False) -> None:
    if not _is_pipe(src) and not Path(src).exists():
        raise UserError(f"input not found: {src}")
    format_from_path(dst)  # an output extension we cannot write fails before any work
    if not _is_pipe(dst) and Path(dst).is_dir():
        raise UserError(f"cannot write {dst}: it is a directory (a folder output needs a folder input)")
    check_output(dst, inputs=[src], force=force, derived=derived)


def _default_output(src: str) -> str:
    if _is_pipe(src):
        return "-"
    p = Path(src)
    if p.is_dir():
        return str(p.parent / (p.name + DEFAULT_SUFFIX))
    return str(p.with_name(p.stem + DEFAULT_SUFFIX + _suffix_for(p)))


# --------------------------------------------------------------------------------------
# denoise


def _denoise_one(den, src: str, dst: str, sigma: Sigma, strength: float, force: bool = True,
                 quality: int | None = None) -> str:
    img = read_image(src)
    if img.frames > 1:
        batch.say(f"aecli: warning: {src} has {img.frames} frames (animated): only the first is denoised")
    out, level = den.denoise(img, sigma, strength=strength)
    write_output(dst, _encode(out, dst, quality, img.metadata), inputs=[src], force=force)
    rng = den.sigma_range
    if level.sigma is not None and rng and level.sigma > rng[1] + 5:
        batch.say(f"aecli: warning: {src}: noise level {level.sigma:.1f} is above the range the model "
                  f"was trained for ({rng[0]:g}..{rng[1]:g}); the result may be poor")
    return f"{src} -> {dst}: {img.width}x{img.height} {img.mode}, {level.summary()}, model {den.name}"


def denoise(src: str, dst: str | None, *, model: str | None, sigma: Sigma, force: bool, quiet: bool,
            workers: int = 1, device: str = "cpu", strength: float = 1.0, output_quality: int | None = None,
            verbose: bool = False) -> int:
    """`aecli denoise`; `sigma` and `strength` come parsed (cli.py: bad values fail before the model,
    and torch, load)."""
    set_verbose(verbose and not quiet)
    derived = dst is None
    if derived:
        dst = _default_output(src)
    if not _is_pipe(src) and Path(src).is_dir():
        pairs = _plan(Path(src), Path(dst))
        loaded = []
        s = batch.run(pairs, lambda a, b: _denoise_one(loaded[0], str(a), str(b), sigma, strength, quality=output_quality),
                      force=force, quiet=quiet, label="denoise", workers=workers, problem=batch.image_problem,
                      prepare=lambda: loaded.append(_load(model, device, sigma)))
        return 1 if s.failed else 0
    _check_single(src, dst, force, derived)
    den = _load(model, device, sigma)
    batch.say(_denoise_one(den, src, dst, sigma, strength, force, output_quality), quiet)
    return 0


def _load(model: str | None, device: str = "cpu", sigma: Sigma = Sigma()):
    import time

    t0 = time.perf_counter()
    from .api import default_model, load_denoiser

    den = load_denoiser(model or default_model(sigma), device)
    note(f"model {den.name} loaded in {time.perf_counter() - t0:.2f} s, torch included")
    return den


# --------------------------------------------------------------------------------------
# noise


def _noise_one(src: str, dst: str, sigma: float, seed, peak: float | None, force: bool = True) -> str:
    from .noise import add_noise

    img = read_image(src)
    px = add_noise(img.pixels, sigma, seed, peak=peak, clip=True)
    out = Image(pixels=px, alpha=img.alpha, mode=img.mode, source_bits=8)
    write_output(dst, _encode(out, dst), inputs=[src], force=force)
    what = f"Gaussian sigma {sigma:g}" + (f" + Poisson peak {peak:g}" if peak is not None else "")
    return f"{src} -> {dst}: {img.width}x{img.height} {img.mode}, {what}, seed {seed if isinstance(seed, int) else seed[0]}"


def _file_seed(seed: int, rel: Path) -> list[int]:
    """A folder's files get different noise: the seed plus a hash of the relative path."""
    return [seed, zlib.crc32(rel.as_posix().encode())]


def noise(src: str, dst: str, *, sigma: float, seed: int, peak: float | None, force: bool, quiet: bool) -> int:
    if not math.isfinite(sigma) or sigma < 0:
        raise UserError(f"--sigma must be a number >= 0 (0..255 scale), not {sigma:g}")
    if peak is not None and (not math.isfinite(peak) or peak <= 0):
        raise UserError(f"--poisson must be a positive number of photons for white, not {peak:g}")
    if seed < 0:
        raise UserError("--seed must be >= 0")
    if not _is_pipe(src) and Path(src).is_dir():
        root = Path(src)
        pairs = _plan(root, Path(dst))
        s = batch.run(pairs, lambda a, b: _noise_one(str(a), str(b), sigma, _file_seed(seed, a.relative_to(root)), peak),
                      force=force, quiet=quiet, label="noise", problem=batch.image_problem)
        return 1 if s.failed else 0
    _check_single(src, dst, force)
    batch.say(_noise_one(src, dst, sigma, seed, peak, force), quiet)
    return 0

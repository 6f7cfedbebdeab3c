"""Compress one image with the fitted codec (decoding is decoder.py's, which needs no torch; its
functions are re-exported here, so that this module is the codec's whole API).

A fitted file is a version 3 .lat file (format.py, kind "fitted") with the model name NAME and the
fingerprint FINGERPRINT; its streams are

    0  the structure record (header.py)
    1  the range-coded parameters, then latents (stream.py)
    2  the escaped symbols (varints)
    3  the alpha channel, deflated (RGBA and LA files only)

The quality levels are rate weights: the fit minimises MSE + LAMBDAS[q] * bits per pixel.  Effort
levels set the number of fitting iterations.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ... import format as latformat
from ...errors import UserError
from ...images.image import Image
from .. import latfile
from . import header, stream
from .decoder import FINGERPRINT, MAX_PIXELS, NAME, FittedDecodeError, decode_latents, decode_pixels, decompress
from .fit import Fitted, Progress, fit
from .intarm import IntArm
# quality -> rate weight lambda (MSE on 0..1 + lambda * bpp): each level about a third more bits
LAMBDAS = {1: 0.008, 2: 0.004, 3: 0.002, 4: 0.001, 5: 0.0005, 6: 0.00025, 7: 0.000125, 8: 0.0000625}
DEFAULT_QUALITY = 4
# effort -> fitting iterations
EFFORTS = {1: 100, 2: 300, 3: 800, 4: 2000, 5: 3000}
DEFAULT_EFFORT = 2
# Shorter fits keep structure version 3: the finest plane's 3x3 (version 4) costs in fits of 100
# iterations and pays from 800 on (docs/fitted.md, "The structure by the length of the fit")
LONG_FIT = 500
SHORT_VERSION = 3
MIN_SIDE = 1
# the codec's API: encoding here, decoding from decoder.py (numpy alone)
__all__ = ["NAME", "FINGERPRINT", "LAMBDAS", "EFFORTS", "MAX_PIXELS", "FittedDecodeError", "Result", "compress",
           "decompress", "decode_latents", "decode_pixels", "pack", "coded_streams", "structure_for"]


@dataclass
class Result:
    data: bytes
    bpp: float
    psnr: float  # of the decoded image (float synthesis, this machine)
    iterations: int
    seconds: float


def iterations_of(effort: int) -> int:
    if effort not in EFFORTS:
        raise UserError(f"--effort {effort} does not exist for the fitted codec (choose "
                        f"{', '.join(map(str, EFFORTS))}: {', '.join(f'{n} iterations' for n in EFFORTS.values())})")
    return EFFORTS[effort]


def lambda_of(quality: int | None) -> float:
    q = DEFAULT_QUALITY if quality is None else quality
    if q not in LAMBDAS:
        raise UserError(f"quality {q} does not exist for the fitted codec (choose 1..{max(LAMBDAS)})")
    return LAMBDAS[q]


def structure_for(mode: str, iterations: int = LONG_FIT) -> header.Structure:
    """The structure a fit of `iterations` uses: the writers' version from LONG_FIT iterations on,
    SHORT_VERSION below (docs/fitted.md, "The structure by the length of the fit")."""
    return header.Structure(channels=1 if mode in ("L", "LA") else 3,
                            version=header.VERSION if iterations >= LONG_FIT else SHORT_VERSION)


def _target(img: Image) -> torch.Tensor:
    px = img.pixels if img.mode in ("L", "LA") else img.rgb
    px = px if px.ndim == 3 else px[..., None]
    return torch.from_numpy(np.array(px, dtype=np.float32)).permute(2, 0, 1) / 255.0


def check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise UserError(f"image size {width}x{height} is over the fitted codec's limit of {MAX_PIXELS} pixels "
                        f"(use the default codec for larger images)")


def compress(img: Image, quality: int | None = None, effort: int = DEFAULT_EFFORT, time_limit: float | None = None,
             report: Callable[[Progress], None] | None = None, iterations: int | None = None, seed: int = 0,
             version: int | None = None) -> Result:
    """The .lat bytes of `img` fitted at `quality` for `effort`'s iterations (or `iterations`), within
    `time_limit` seconds of fitting if given, as structure `version` (by default chosen by the
    length of the fit, `structure_for`)."""
    q = DEFAULT_QUALITY if quality is None else quality
    lam = lambda_of(q)
    n = iterations if iterations is not None else iterations_of(effort)
    h, w = img.pixels.shape[:2]
    check_size(w, h)
    start = time.monotonic()
    with _threads():
        s = structure_for(img.mode, n)
        s = s if version is None else dataclasses.replace(s, version=version)
        f = fit(_target(img), lam, s, n, time_limit, report, seed)
    data = pack(f, img, q)
    decoded = decode_pixels(latformat.unpack(data))
    target = _target(img).permute(1, 2, 0).numpy() * 255
    mse = float(np.mean((decoded.astype(np.float64).reshape(target.shape) - target) ** 2))
    return Result(data, 8 * len(data) / (w * h), 10 * math.log10(255**2 / max(mse, 1e-12)), f.iterations,
                  time.monotonic() - start)


@contextmanager
def _threads():
    """One torch thread while the CPU is already busy (load average at least the core count): the
    fit's many small operations then run several times faster than with threads
    that wait for each other; torch's default otherwise."""
    before = torch.get_num_threads()
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:
        busy = False
    if busy:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def coded_streams(f: Fitted, s: header.Structure | None = None) -> tuple[bytes, bytes]:
    """The range-coded stream (parameters, then latents) and the escapes of a fit, coded as
    structure s (the fit's own by default)."""
    s = s or f.structure
    wr = stream.Writer(s)
    stream.put_parameters(wr, f.ints, s.tables)
    arm = IntArm(f.ints[:s.arm_tensors()], s.exponents[:s.arm_tensors()], s)
    stream.encode_latents(wr, s, f.planes, arm)
    return wr.finish()


def pack(f: Fitted, img: Image, quality: int) -> bytes:
    coded, escapes = coded_streams(f)
    return latfile.pack(img, NAME, FINGERPRINT, quality, [f.structure.pack(), coded, escapes], kind="fitted")

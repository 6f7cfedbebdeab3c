"""Decoding a fitted file with numpy alone: its latents (exact integers, intarm.py) and its pixels.

`aecli decompress` of a fitted file is mostly start-up when torch is imported (about 1.3 s of the
1.5 to 2.3 s a 768x512 file took as a whole process); this decoder needs numpy and constriction
only.  The synthesis runs in float32, as the fit's torch synthesis (nets.Synthesis) does, with the
same parameters: a pixel may differ from it by one level now and then, as between two machines
(docs/format.md, "Pixels"); tests/test_fitted_decoder.py checks the two against each other.  The
encoder (codec.py) reports the PSNR of this decoder's pixels.
"""

from __future__ import annotations

import math

import numpy as np

from ... import format as latformat
from ...errors import UserError
from ...images.image import Image
from ..coding import CodingError
from ..decoding import ALPHA_MODES, inflate_alpha
from . import header, stream
from .intarm import IntArm

NAME = "fit"
FINGERPRINT = b"FIT1"
MAX_PIXELS = 1 << 23  # largest image the fitted codec encodes or decodes (8 MP): memory stays bounded
CHUNK = 65536  # pixels per matrix product of the synthesis (its activations stay in the cache)


class FittedDecodeError(UserError):
    """A fitted file that does not decode (corrupt, or over the decode limit)."""


# ---- upsampling (nets.upsample and kernels.upsample_aligned do the same in torch) ----------------

def cubic(t: float, a: float = -0.75) -> list[float]:
    """Weights of the 4 source samples around a point at fraction t past the second one."""
    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic_phases(factor: int) -> np.ndarray:
    """(factor, 5) float64: output sample factor*m + r is the dot product of row r with source
    samples m-2 .. m+2 (bicubic, half-pixel centres)."""
    k = np.zeros((factor, 5))
    for r in range(factor):
        s = (r + 0.5) / factor - 0.5  # where output r falls, in source samples from m
        i = math.floor(s)
        for j, w in enumerate(cubic(s - i)):
            k[r, i + 1 + j] = w
    return k


def upsample_aligned(p: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """Plane p (h, w) -> (size) float32: bicubic by `factor` (a power of two), edges repeated,
    cropped to `size`; columns, then rows, each one matrix product of the phase weights with the
    5 shifted copies of the padded plane."""
    h, w = p.shape
    if factor == 1:
        return p[:size[0], :size[1]].astype(np.float32)
    k = bicubic_phases(factor).astype(np.float32)
    x = np.pad(p.astype(np.float32), 2, mode="edge")  # (h+4, w+4)
    x = k @ np.stack([x[:, j:j + w] for j in range(5)]).reshape(5, -1)  # (factor, (h+4) w)
    x = x.reshape(factor, h + 4, w).transpose(1, 2, 0).reshape(h + 4, w * factor)[:, :size[1]]
    x = k @ np.stack([x[j:j + h] for j in range(5)]).reshape(5, -1)  # (factor, h W)
    return x.reshape(factor, h, size[1]).transpose(1, 0, 2).reshape(h * factor, size[1])[:size[0]]


def _resize_axis(x: np.ndarray, out: int) -> np.ndarray:
    """Bicubic resampling of the first axis of x to `out` samples, half-pixel centres, edges
    repeated (torch's interpolate(mode="bicubic", align_corners=False) along one axis)."""
    n = x.shape[0]
    src = (np.arange(out) + 0.5) * (n / out) - 0.5
    base = np.floor(src)
    t = src - base
    acc = np.zeros((out,) + x.shape[1:], dtype=np.float32)
    for j in range(4):
        w = np.array([cubic(v)[j] for v in t], dtype=np.float32)
        idx = np.clip(base.astype(np.int64) - 1 + j, 0, n - 1)
        acc += w.reshape((-1,) + (1,) * (x.ndim - 1)) * x[idx]
    return acc


def interpolate(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Plane p (h, w) -> (size) float32 (structure version 1: straight to the image size)."""
    p = p.astype(np.float32)
    if p.shape == tuple(size):
        return p
    return _resize_axis(_resize_axis(p, size[0]).T, size[1]).T


def neighbourhood(u: np.ndarray, kernel: int) -> list[np.ndarray]:
    """(h, w) -> kernel**2 planes: each value's kernel x kernel neighbourhood, row by row, edges repeated."""
    if kernel == 1:
        return [u]
    r, (h, w) = kernel // 2, u.shape
    f = np.pad(u, r, mode="edge")
    return [f[i:i + h, j:j + w] for i in range(kernel) for j in range(kernel)]


# ---- the synthesis -------------------------------------------------------------------------

def synthesis(s: header.Structure, ints: list[np.ndarray], planes: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The synthesis of structure s with parameter integers `ints` (every tensor, ARM first) on
    integer planes (finest first) -> (C, H, W) float32 on 0..1 (not clamped)."""
    h, w = size
    n_arm = s.arm_tensors()
    params = [(np.asarray(q, dtype=np.float64) * 2.0 ** -e).astype(np.float32)
              for q, e in zip(ints[n_arm:], s.exponents[n_arm:])]
    depth = len(s.synth_dims()) - 1
    weights, biases = params[0:2 * depth:2], params[1:2 * depth:2]
    x = np.empty((s.synth_dims()[0], h * w), dtype=np.float32)  # every input row written once
    rows = neighbourhood(planes[0].astype(np.float32)[:h, :w], s.fine_kernel)
    for k, p in enumerate(planes[1:], 1):
        rows.append(upsample_aligned(p, 1 << k, size) if s.version >= 2 else interpolate(p, size))
    for i, r in enumerate(rows):
        x[i] = r.reshape(-1)
    del rows
    out = np.empty((s.channels, h * w), dtype=np.float32)
    for c in range(0, h * w, CHUNK):
        a = x[:, c:c + CHUNK]
        for i, (wt, b) in enumerate(zip(weights, biases)):
            a = wt @ a + b[:, None]
            if i < depth - 1:
                np.maximum(a, 0, out=a)
        out[:, c:c + CHUNK] = a
    del x
    y = out.reshape(s.channels, h, w)
    for i in range(s.refine):
        wt, b = params[2 * depth + 2 * i], params[2 * depth + 2 * i + 1]  # (C, C, 3, 3), (C,)
        pad = np.pad(y, ((0, 0), (1, 1), (1, 1)), mode="edge")
        acc = np.broadcast_to(b[:, None, None], y.shape).copy()
        for di in range(3):
            for dj in range(3):
                acc += np.einsum("oc,chw->ohw", wt[:, :, di, dj], pad[:, di:di + h, dj:dj + w])
        y = y + acc
    return y


# ---- the file -------------------------------------------------------------------------------

def structure_of(lat: latformat.LatFile) -> header.Structure:
    """The structure record of a fitted file, checked against the file."""
    if lat.model != NAME or lat.fingerprint != FINGERPRINT:
        raise FittedDecodeError(f"unsupported fitted codec '{lat.model}' ({lat.fingerprint.hex()})")
    needed = 3 + (lat.mode in ALPHA_MODES)
    if len(lat.streams) != needed:
        raise FittedDecodeError(f"corrupt .lat file: {len(lat.streams)} streams, but a fitted {lat.mode} file has {needed}")
    try:
        s = header.unpack(lat.streams[0])
    except header.HeaderError as exc:
        raise FittedDecodeError(f"corrupt .lat file: {exc}") from None
    if s.channels != (1 if lat.mode in ("L", "LA") else 3):
        raise FittedDecodeError(f"corrupt .lat file: {s.channels} channels in a {lat.mode} file")
    return s


def decode(lat: latformat.LatFile, max_pixels: int | None = None
           ) -> tuple[header.Structure, list[np.ndarray], list[np.ndarray]]:
    """(structure, parameter integers, integer latent planes finest first) of a fitted file."""
    w, h = lat.width, lat.height
    limit = min(MAX_PIXELS, max_pixels) if max_pixels else MAX_PIXELS
    if w * h > limit:
        raise FittedDecodeError(f"image size {w}x{h} is over the decode limit of {limit} pixels for fitted files")
    s = structure_of(lat)
    try:
        rd = stream.Reader(s, lat.streams[1], lat.streams[2])
        ints = stream.get_parameters(rd, s)
        n = s.arm_tensors()
        planes = stream.decode_latents(rd, s, w, h, IntArm(ints[:n], s.exponents[:n], s))
        rd.finish()
    except CodingError as exc:
        raise FittedDecodeError(f"corrupt .lat file: {exc}") from None
    return s, ints, planes


def decode_latents(lat: latformat.LatFile) -> list[np.ndarray]:
    """The integer latent planes of a fitted file, finest first (the same on every machine)."""
    return [p.astype(np.int64) for p in decode(lat)[2]]


def decode_pixels(lat: latformat.LatFile, max_pixels: int | None = None) -> np.ndarray:
    """The colour pixels (H, W, C) uint8 of a fitted file."""
    s, ints, planes = decode(lat, max_pixels)
    x = synthesis(s, ints, planes, (lat.height, lat.width))
    x = np.nan_to_num(x, nan=0.0)
    np.clip(x, 0, 1, out=x)
    return np.round(x * 255).astype(np.uint8).transpose(1, 2, 0)


def decompress(lat: latformat.LatFile, max_pixels: int | None = None) -> Image:
    px = decode_pixels(lat, max_pixels)
    alpha = None
    if lat.mode in ALPHA_MODES:
        try:
            alpha = inflate_alpha(lat.streams[3], lat.width, lat.height)
        except UserError as exc:
            raise FittedDecodeError(str(exc)) from None
    px = px[..., 0] if px.shape[2] == 1 else px
    return Image(pixels=np.ascontiguousarray(px), alpha=alpha, mode=lat.mode, source_bits=8)

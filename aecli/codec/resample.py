"""The decoder's downscale, defined bit for bit: a Lanczos-3 resize of 8-bit pixels.

A file coded at a larger scale (format version 2) decodes to an image at the coded size, which the
decoder scales back down to the file's width and height.  That step is part of what a file decodes
to, so it must give the same pixels on every machine.  A library resize does not promise that: its
filter coefficients come from the C library's ``sin`` (which differs between platforms and SIMD
builds) and from whatever floating-point contractions its compiler chose.  This module computes
them itself:

1. **Coefficients** (`coefficients`), per output pixel, in IEEE-754 double precision with the
   basic operations alone (+, -, *, /, truncation), each correctly rounded and never fused, so the
   same on every machine.  ``sin`` is this module's own (a three-part reduction by pi and an odd
   Taylor polynomial to degree 23).  Output pixel ``i`` of ``n`` from ``m`` input pixels
   (``m >= n``) is centred at ``c = (i + 0.5) * m / n``; it reads the input pixels ``j`` from
   ``trunc(c - 3m/n + 0.5)`` (at least 0) up to ``trunc(c + 3m/n + 0.5)`` (at most ``m``) with
   weights ``L((j - c + 0.5) * n/m)``, ``L(t) = sinc(t) sinc(t/3)`` on ``-3 <= t < 3``,
   divided by their sum (added left to right), times ``2^22``, made integers by ``trunc(v + 0.5)``
   (``trunc(v - 0.5)`` below zero).
2. **Filtering**, in integers: each pass computes ``(2^21 + sum pixel_j * k_j) >> 22`` (an
   arithmetic shift) clamped to 0..255, first along rows, then along columns of that 8-bit result.

This is the algorithm of Pillow's 8-bit ``Image.resize(..., LANCZOS)``; the two give the same
pixels wherever Pillow rounds its coefficients to the same integers and resizes rows first (Pillow
13 resizes some tall images columns first, which rounds differently).  numpy only: no torch, no
Pillow.  The numpy operations used are elementwise, one rounding each, in a fixed order.
"""

from __future__ import annotations

import numpy as np

PRECISION_BITS = 22  # the filter's fixed-point fraction: weights are multiples of 2^-22
SUPPORT = 3.0  # Lanczos-3
_CHUNK = 1024  # about this many kilo-values of the int32 accumulator at a time (bounds memory)

# pi in three parts: _PI1 and _PI2 are pi's leading bits (33 and 31 significant bits, exact
# binary fractions), so that n * _PI1 and n * _PI2 are exact for the small n used here; _PI3 is the
# rest, rounded.  All literals below are the doubles nearest to their exact values.
_PI1 = 3.1415926534682512
_PI2 = 1.2154201012607932e-10
_PI3 = 4.044532497591901e-21
_INV_PI = 0.3183098861837907
# (-1)^k / (2k+1)!, k = 1..11
_SIN_COEFFS = (-0.16666666666666666, 0.008333333333333333, -0.0001984126984126984, 2.7557319223985893e-06,
               -2.505210838544172e-08, 1.6059043836821613e-10, -7.647163731819816e-13, 2.8114572543455206e-15,
               -8.22063524662433e-18, 1.9572941063391263e-20, -3.868170170630684e-23)


def sin(y: np.ndarray) -> np.ndarray:
    """sin(y) for float64 |y| <= about 10, from basic IEEE operations only (the same everywhere)."""
    y = np.asarray(y, dtype=np.float64)
    n = np.rint(y * _INV_PI)
    r = ((y - n * _PI1) - n * _PI2) - n * _PI3  # |r| <= pi/2 + rounding
    r2 = r * r
    p = np.full_like(r, _SIN_COEFFS[-1])
    for c in reversed(_SIN_COEFFS[:-1]):
        p = p * r2 + c
    s = r + (r * r2) * p
    return np.where(np.fmod(n, 2.0) != 0.0, -s, s)


def _sinc(t: np.ndarray) -> np.ndarray:
    y = t * np.pi
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t == 0.0, 1.0, sin(y) / y)


def _lanczos(t: np.ndarray) -> np.ndarray:
    inside = (t >= -SUPPORT) & (t < SUPPORT)
    return np.where(inside, _sinc(t) * _sinc(t / 3.0), 0.0)


def coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index per output pixel, int32 weights out_size x taps) for in_size -> out_size.

    Weights past an output pixel's last input are 0, and its indexes past the input are clamped
    to the last pixel, so every row can be applied with the same number of taps.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError("sizes must be positive")
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    taps = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0.0).astype(np.int64)
    stop = np.minimum(np.trunc(center + support + 0.5), float(in_size)).astype(np.int64)
    count = stop - first
    inv = 1.0 / filterscale
    j = first[:, None] + np.arange(taps)[None, :]
    used = np.arange(taps)[None, :] < count[:, None]
    w = np.where(used, _lanczos(((j.astype(np.float64) - center[:, None]) + 0.5) * inv), 0.0)
    total = np.zeros(out_size)
    for k in range(taps):  # left to right, as written: a fixed order of additions
        total = total + w[:, k]
    w = w / np.where(total == 0.0, 1.0, total)[:, None]  # a zero sum leaves the weights as they are
    scaled = w * float(1 << PRECISION_BITS)
    kk = np.trunc(np.where(scaled < 0.0, scaled - 0.5, scaled + 0.5)).astype(np.int32)
    return first, kk


def _filter_axis0(src: np.ndarray, out_size: int) -> np.ndarray:
    """Resize axis 0 of an (A, B, C) uint8 array to out_size, out_size rows at a time in chunks.

    Filtering along the first axis gathers whole rows, which numpy copies fast."""
    first, kk = coefficients(src.shape[0], out_size)
    idx = np.minimum(first[:, None] + np.arange(kk.shape[1])[None, :], src.shape[0] - 1)
    out = np.empty((out_size,) + src.shape[1:], dtype=np.uint8)
    rows = max(1, (_CHUNK * 1024) // max(1, src.shape[1] * src.shape[2]))
    for a in range(0, out_size, rows):
        b = min(out_size, a + rows)
        acc = np.full((b - a,) + src.shape[1:], 1 << (PRECISION_BITS - 1), dtype=np.int32)
        for k in range(kk.shape[1]):
            acc += src[idx[a:b, k]] * kk[a:b, k, None, None]
        np.right_shift(acc, PRECISION_BITS, out=acc)
        out[a:b] = np.clip(acc, 0, 255)
    return out


def resize(px: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxW or HxWxC uint8 pixels resized to width x height: first along each row (width), then
    along each column (height), the rows' result rounded to 8 bits in between."""
    px = np.asarray(px)
    if px.dtype != np.uint8 or px.ndim not in (2, 3):
        raise ValueError("expected HxW or HxWxC uint8 pixels")
    flat = px.ndim == 2
    out = px[:, :, None] if flat else px
    if out.shape[1] != width:
        cols = _filter_axis0(np.ascontiguousarray(out.transpose(1, 0, 2)), width)  # W' x H x C
        out = cols.transpose(1, 0, 2)
    if out.shape[0] != height:
        out = _filter_axis0(np.ascontiguousarray(out), height)
    out = np.ascontiguousarray(out)
    return out[:, :, 0] if flat else out

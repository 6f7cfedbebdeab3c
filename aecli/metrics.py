"""Image quality metrics: PSNR, SSIM and MS-SSIM, in plain numpy.

Conventions follow the ones used by CompressAI / ``pytorch_msssim`` so that the
numbers can be compared with published rate-distortion curves:

* images are ``uint8`` arrays of shape ``HxW`` (grayscale) or ``HxWxC`` (RGB);
  other dtypes are accepted and treated as values on the ``0..data_range`` scale;
* PSNR of an RGB image is computed from the MSE over all channels jointly;
* SSIM / MS-SSIM use an 11-tap Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 255, "valid" filtering (no padding), and are computed
  per channel and then averaged over channels;
* MS-SSIM uses the 5 weights of Wang et al. (2003) and 2x2 average pooling
  between scales. As in ``pytorch_msssim``, a side of odd length is zero-padded
  by one pixel on each end before pooling (``count_include_pad``), which never
  happens for the even-sized Kodak images.

Images too small for 5 scales use as many scales as fit (a scale fits when both
sides are at least as long as the window) with the weights renormalised to sum
to one. Images smaller than the window itself use a smaller odd window (see
:func:`ssim`), so that the metrics are defined for any image of at least 1x1.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["psnr", "mse", "ssim", "ms_ssim", "MS_SSIM_WEIGHTS", "gaussian_window"]

#: Per-scale exponents of Wang, Simoncelli & Bovik (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("empty image")
    return a, b


def mse(a, b) -> float:
    """Mean squared error over all pixels and channels (float64)."""
    a, b = _pair(a, b)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a, b, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images.

    For colour images the MSE is taken over all channels jointly (the usual
    "RGB PSNR" of CompressAI), not averaged per channel in dB.
    """
    m = mse(a, b)
    if m == 0.0:
        return float("inf")
    return 10.0 * math.log10(peak * peak / m)


def gaussian_window(size: int = _WIN_SIZE, sigma: float = _WIN_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of odd length ``size`` (same as pytorch_msssim)."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes of ``x`` with ``g``.

    Each pass is a matrix-vector product over a strided sliding-window view,
    which lets numpy hand the work to BLAS without copying the windows.
    """
    k = g.shape[0]
    y = sliding_window_view(x, k, axis=-1) @ g  # along W
    return sliding_window_view(y, k, axis=-2) @ g  # along H


def _ssim_cs(x: np.ndarray, y: np.ndarray, g: np.ndarray, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel SSIM and contrast-structure terms for (C, H, W) float arrays."""
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    # Filter the five moment maps in one vectorised pass: shape (5, C, H, W).
    stack = np.stack([x, y, x * x, y * y, x * y])
    mu_x, mu_y, exx, eyy, exy = _filter_valid(stack, g)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    sigma_xx = exx - mu_xx
    sigma_yy = eyy - mu_yy
    sigma_xy = exy - mu_xy
    cs_map = (2.0 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = ((2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def _to_chw(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    if a.ndim == 2:
        return a[None]
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def _window_for(h: int, w: int) -> np.ndarray:
    size = min(_WIN_SIZE, h, w)
    if size % 2 == 0:
        size -= 1
    return gaussian_window(size, _WIN_SIGMA)


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling with stride 2, like ``F.avg_pool2d(x, 2, padding=s % 2)``."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = h % 2, w % 2
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)])
        h, w = x.shape[-2], x.shape[-1]
    h2, w2 = h // 2, w // 2
    x = x[..., : 2 * h2, : 2 * w2]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def ssim(a, b, data_range: float = 255.0) -> float:
    """Single-scale SSIM (Gaussian window 11, sigma 1.5), mean over channels.

    If a side is shorter than 11 pixels the window shrinks to the largest odd
    size that fits (sigma stays 1.5).
    """
    a, b = _pair(a, b)
    x, y = _to_chw(a), _to_chw(b)
    g = _window_for(x.shape[-2], x.shape[-1])
    s, _ = _ssim_cs(x, y, g, data_range)
    return float(s.mean())


def ms_ssim(a, b, data_range: float = 255.0, weights=MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM, averaged over channels (CompressAI / pytorch_msssim convention).

    Per channel: ``prod_i relu(cs_i) ** w_i`` over the first scales times
    ``relu(ssim_last) ** w_last``, then the mean over channels. Images too small
    for ``len(weights)`` scales use the scales that fit (both sides >= 11 px;
    at least one) and renormalised weights.
    """
    a, b = _pair(a, b)
    x, y = _to_chw(a), _to_chw(b)
    w = np.asarray(weights, dtype=np.float64)

    # How many scales fit: side length at scale i is what _avg_pool2 yields.
    h, wd = x.shape[-2], x.shape[-1]
    levels = 1
    while levels < len(w):
        h, wd = (h + h % 2) // 2, (wd + wd % 2) // 2
        if min(h, wd) < _WIN_SIZE:
            break
        levels += 1
    if levels < len(w):
        w = w[:levels] / w[:levels].sum()

    g = _window_for(x.shape[-2], x.shape[-1])
    factors = []
    for i in range(levels):
        s, cs = _ssim_cs(x, y, g, data_range)
        if i < levels - 1:
            factors.append(np.maximum(cs, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
        else:
            factors.append(np.maximum(s, 0.0))
    per_channel = np.prod(np.stack(factors) ** w[:, None], axis=0)
    return float(per_channel.mean())

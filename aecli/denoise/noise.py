"""Synthetic noise and the noise-level estimate, in plain numpy (no torch).

Noise (:func:`add_noise`, :func:`add_gaussian`, :func:`add_poisson_gaussian`)
    Values are on the 0..255 scale.  Gaussian: y = x + sigma * N(0, 1), independent per pixel
    and channel.  Poisson-Gaussian: y = 255/peak * Poisson(x * peak/255) + sigma * N(0, 1),
    i.e. a sensor that collects `peak` photons at full white, plus read noise.
    The random numbers come from ``numpy.random.default_rng(seed)``: the same seed gives the
    same noise, bit for bit (within a numpy version; numpy keeps its generators' streams stable).
    ``clip=True`` rounds and clips to uint8 (what a user's 8-bit noisy file holds);
    ``clip=False`` returns the float32 noisy values unclipped (the papers' protocol).

Estimate (:func:`estimate_sigma`)
    Chen, Zhu & Heng (ICCV 2015), "An efficient statistical method for image noise level
    estimation": the covariance of the image's overlapping patches (all channels together) has
    eigenvalues that are sigma^2 in the directions that hold no image structure. The smallest
    eigenvalues are taken as noise as long as their mean does not exceed their median (a tail
    of structure makes the mean larger than the median); sigma is the square root of that mean.
    Clipping at 0 and 255 hides noise (about -10% at sigma 50), so a second pass keeps only
    the patches whose mean is more than 2 sigma from both bounds (about -4% left at sigma 50).
    Patches are sampled on a regular sub-grid so the cost is bounded on large images. Images
    too small for a reliable covariance use the median absolute deviation of a fine-scale
    Laplacian residual instead.

:meth:`Sigma.parse` reads a user's noise level once, at the edge (a number 0..255, 'auto', or None),
into a :class:`Sigma` that is passed down; :func:`parse_strength` the `--strength` of `aecli
denoise`: a number or a named level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import UserError

__all__ = ["add_noise", "add_gaussian", "add_poisson_gaussian", "estimate_sigma", "Sigma", "parse_strength"]

SIGMA_MAX = 255.0
PATCH = 7
MAX_PATCHES = 30_000
CLIP_MARGIN = 2.0  # patches whose mean is nearer than this many sigmas to 0 or 255 are left out


def _check_level(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


def add_noise(pixels, sigma: float, seed=0, *, peak: float | None = None, clip: bool = True) -> np.ndarray:
    """Gaussian noise of std `sigma` (0..255 scale), after Poisson noise at `peak` photons if given.

    `pixels`: uint8 or float array (HxW or HxWxC) on the 0..255 scale. `seed`: anything
    ``numpy.random.default_rng`` takes (an int, a list of ints, a SeedSequence).
    Returns uint8 when `clip`, else float32.
    """
    sigma = _check_level("sigma", sigma)
    x = np.asarray(pixels, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if peak is not None:
        peak = _check_level("peak", peak)
        if peak == 0:
            raise ValueError("peak must be > 0")
        x = rng.poisson(np.clip(x, 0, None) * (peak / 255.0)).astype(np.float64) * (255.0 / peak)
    if sigma > 0:
        x = x + rng.standard_normal(x.shape) * sigma
    if clip:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return x.astype(np.float32)


def add_gaussian(pixels, sigma: float, seed=0, clip: bool = True) -> np.ndarray:
    """`pixels` + sigma * N(0, 1), deterministic for a seed (see :func:`add_noise`)."""
    return add_noise(pixels, sigma, seed, clip=clip)


def add_poisson_gaussian(pixels, peak: float, sigma: float = 0.0, seed=0, clip: bool = True) -> np.ndarray:
    """Poisson noise at `peak` photons for white, plus Gaussian read noise `sigma` (see :func:`add_noise`)."""
    return add_noise(pixels, sigma, seed, peak=peak, clip=clip)


@dataclass(frozen=True)
class Sigma:
    """A noise level as the user asks for it: ``value`` on the 0..255 scale, or None when it is left
    to the model ('auto': the model's own noise map, or the classical estimate)."""

    value: float | None = None

    @property
    def given(self) -> bool:
        return self.value is not None

    @classmethod
    def parse(cls, raw) -> "Sigma":
        """None, 'auto' (or 'blind', ''), or a number 0..255 (from the command line or the API); a
        Sigma is returned as it is.  UserError otherwise."""
        if isinstance(raw, Sigma):
            return raw
        if raw is None:
            return cls(None)
        value = raw
        if isinstance(raw, str):
            v = raw.strip().lower()
            if v in ("auto", "blind", ""):
                return cls(None)
            try:
                value = float(v)
            except ValueError:
                raise UserError(f"--sigma must be a number from 0 to 255 or 'auto', not {raw!r}") from None
        value = float(value)
        if not math.isfinite(value) or not 0 <= value <= SIGMA_MAX:
            raise UserError(f"--sigma must be a number from 0 to 255 or 'auto', not {value:g}")
        return cls(value)


# --------------------------------------------------------------------------------------
# estimate


def _laplacian_mad(x: np.ndarray) -> float:
    """sigma from the median absolute value of [[1,-2,1],[-2,4,-2],[1,-2,1]] * x (std 6 sigma on white noise)."""
    if x.shape[0] < 3 or x.shape[1] < 3:
        return 0.0
    r = (x[:-2, :-2] - 2 * x[:-2, 1:-1] + x[:-2, 2:]
         - 2 * x[1:-1, :-2] + 4 * x[1:-1, 1:-1] - 2 * x[1:-1, 2:]
         + x[2:, :-2] - 2 * x[2:, 1:-1] + x[2:, 2:])
    return float(np.median(np.abs(r)) / 0.6744897501960817 / 6.0)


def _patches(x: np.ndarray, p: int, max_patches: int) -> np.ndarray:
    """(N, p*p*C) patches on a regular sub-grid, at most about `max_patches`."""
    h, w, c = x.shape
    nh, nw = h - p + 1, w - p + 1
    stride = max(1, math.ceil(math.sqrt(nh * nw / max_patches)))
    view = sliding_window_view(x, (p, p, c))[::stride, ::stride, 0]
    return view.reshape(-1, p * p * c)


def estimate_sigma(pixels, patch: int = PATCH, max_patches: int = MAX_PATCHES, clipped_range: bool = True) -> float:
    """Noise standard deviation (0..255 scale) of an image with white Gaussian-like noise.

    `pixels`: HxW or HxWxC, uint8 or float on the 0..255 scale. The noise is assumed to have
    the same level in every channel. Returns 0.0 for images too small to tell (under 3x3).
    `clipped_range`: the values were clipped to 0..255 (an 8-bit file); patches near the
    bounds, where clipping hides part of the noise, are then left out of a second estimate.
    """
    x = np.asarray(pixels, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.size == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {np.shape(pixels)}")
    h, w, c = x.shape
    p = min(patch, h, w)
    d = p * p * c
    if p < 3 or (h - p + 1) * (w - p + 1) < 8 * d:
        return float(np.mean([_laplacian_mad(x[:, :, k]) for k in range(c)]))
    pts = _patches(x, p, max_patches)
    # second moments once (one matrix product); a subset's are the total minus the left-out rows'
    moments = _Moments(pts)
    sigma = _pca_sigma(moments.covariance())
    if not clipped_range:
        return sigma
    # 8-bit noisy files are clipped at 0 and 255, which hides part of the noise: keep the
    # patches whose mean is at least CLIP_MARGIN sigmas from the bounds, and re-estimate
    means = pts.mean(axis=1)
    for _ in range(3):
        keep = (means > CLIP_MARGIN * sigma) & (means < 255.0 - CLIP_MARGIN * sigma)
        if keep.all() or keep.sum() < 8 * d:
            break
        new = _pca_sigma(moments.covariance(without=~keep))
        if abs(new - sigma) < 1e-3:
            return new
        sigma = new
    return sigma


class _Moments:
    """Sum and sum of outer products of the rows of `pts` (float64), for covariances of subsets."""

    def __init__(self, pts: np.ndarray):
        self.pts = pts
        self.n = pts.shape[0]
        self.total = pts.sum(axis=0)
        self.outer = pts.T @ pts

    def covariance(self, without: np.ndarray | None = None) -> np.ndarray:
        n, total, outer = self.n, self.total, self.outer
        if without is not None and without.any():
            out = self.pts[without]
            n, total, outer = n - out.shape[0], total - out.sum(axis=0), outer - out.T @ out
        mean = total / n
        return outer / n - np.outer(mean, mean)


def _pca_sigma(cov: np.ndarray) -> float:
    """sqrt of the mean of the smallest eigenvalues of the patch covariance `cov` whose mean does not
    exceed their median."""
    lam = np.sort(np.clip(np.linalg.eigvalsh(cov), 0, None))  # ascending
    for k in range(lam.size, 0, -1):  # drop the largest until the rest look like noise
        rest = lam[:k]
        tau = rest.mean()
        if tau <= np.median(rest):
            return float(math.sqrt(tau))
    return float(math.sqrt(lam[0]))


STRENGTH_MAX = 4.0
STRENGTHS = {"light": 0.6, "normal": 1.0, "strong": 1.5}  # the named levels of --strength


def parse_strength(value) -> float:
    """--strength: a number 0..STRENGTH_MAX or one of STRENGTHS' names."""
    if isinstance(value, str) and value.strip().lower() in STRENGTHS:
        return STRENGTHS[value.strip().lower()]
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0 <= v <= STRENGTH_MAX:  # (NaN fails too)
        names = ", ".join(f"{k} ({v:g})" for k, v in STRENGTHS.items())
        raise UserError(f"--strength must be a number 0..{STRENGTH_MAX:g} or {names}, not {value!r}")
    return v

"""Encoder-side refinement: latents fitted to one image (`aecli compress --effort`).

The analysis transform predicts an image's latents in one pass, a guess that serves every image.
For one given image other latents may cost fewer bits for the same error.  `refine()` starts from
the analysis's latents and descends the level's own rate-distortion loss,

    lambda * 255^2 * MSE + bits / pixels,

over the latents y and hyper-latents z themselves, the decoder untouched: the result is an
ordinary .lat file that any aecli with the same model decodes, at the usual decoding speed.

Rounding inside the loop is stochastic Gumbel annealing (Yang et al., "Improving Inference for
Neural Image Compression", 2020): each value is a random soft mix of its two integer neighbours
that hardens toward plain rounding as the temperature falls.  The result is kept only where it
is better: if the model's loss with hard rounding is not lower than the analysis's own latents
give, those are coded instead, so refinement never makes a file worse by the model's measure.

Reproducible: the random draws come from a generator with a fixed seed, so the same image, level
and effort give the same bytes (on the same machine and device).

Memory: the loop back-propagates through the synthesis, so a large image is refined in tiles of
TILE x TILE latents (TILE * 16 pixels), one after another in raster order, each with HALO latents
of context around it that are held fixed (already refined where an earlier tile covered them).
Only the tile's own latents move, and only its own pixels and bits count in its loss.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import UserError
from .entropy import gaussian_likelihood
from .model import HyperpriorCodec

TILE = 48  # latents per tile side (768 pixels): a Kodak-sized image is one tile
HALO = 8  # latents of fixed context around a tile (two hyper-latent cells)
SEED = 0x5EED


@dataclass(frozen=True)
class Effort:
    steps: int
    lr: float


# --effort levels: 0 is the analysis transform alone (fast); each level doubles the encoding work.
# Measured in docs/results/refine_effort.md (rate saved at equal quality, and seconds per image).
EFFORTS = {0: Effort(0, 0.0), 1: Effort(50, 0.01), 2: Effort(100, 0.01), 3: Effort(200, 0.005)}


def effort(level: int) -> Effort:
    if level not in EFFORTS:
        raise UserError(f"--effort must be one of {', '.join(str(e) for e in sorted(EFFORTS))}")
    return EFFORTS[level]


def _gumbel(shape, gen: torch.Generator, device) -> torch.Tensor:
    u = torch.rand(shape, generator=gen, device=gen.device).to(device)
    return -torch.log(-torch.log(u.clamp_(1e-10, 1 - 1e-10)))


def soft_round(v: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing: floor(v) + w, w in (0, 1) a Gumbel-softmax draw between the two
    neighbours, each weighted by how close v is to it; w tends to round(v) - floor(v) as tau -> 0."""
    fl = torch.floor(v)
    d = v - fl
    eps = 1e-5
    down = -torch.atanh(d.clamp(eps, 1 - eps)) / tau
    up = -torch.atanh((1 - d).clamp(eps, 1 - eps)) / tau
    g = _gumbel((2,) + tuple(v.shape), gen, v.device)
    w = torch.softmax(torch.stack([down + g[0], up + g[1]]) / tau, dim=0)[1]
    return fl + w


def temperature(step: int, steps: int) -> float:
    return max(0.5 * math.exp(-3.0 * step / steps), 0.02)


class _Window:
    """One tile's view: its latents (with halo), pixels and masks of what counts."""

    def __init__(self, x, size, y, z, rows: slice, cols: slice, halo: int):
        lh, lw = y.shape[-2:]
        r0, c0 = max(rows.start - halo, 0), max(cols.start - halo, 0)
        r1, c1 = min(rows.stop + halo, lh), min(cols.stop + halo, lw)
        self.wy = (slice(r0, r1), slice(c0, c1))
        inner = torch.zeros(1, 1, r1 - r0, c1 - c0, device=y.device)
        inner[..., rows.start - r0: rows.stop - r0, cols.start - c0: cols.stop - c0] = 1
        self.inner_y = inner
        self.x = x[..., 16 * r0: 16 * r1, 16 * c0: 16 * c1].to(y.device).float().div_(255.0)
        pix = F.interpolate(inner, scale_factor=16, mode="nearest")
        h, w = size  # the real image: its padding does not count
        pix[..., max(h - 16 * r0, 0):, :] = 0
        pix[..., :, max(w - 16 * c0, 0):] = 0
        self.pix = pix
        if z is not None:  # tiles and halos are multiples of 4 latents: whole hyper-latent cells
            self.wz = (slice(r0 // 4, -(-r1 // 4)), slice(c0 // 4, -(-c1 // 4)))
            self.inner_z = inner[..., ::4, ::4]


def _bits_and_yhat(model, y, z, q, soft):
    """(bits, y_hat) of latents y and hyper-latents z, rounded by `soft` (a function)."""
    if isinstance(model, HyperpriorCodec):
        zq = soft(z)
        scales, means = model.condition(y, model.h_s(zq * model.gain_of(model.inv_hgain, q)), soft)
        r = soft(y - means)
        y_bits = -torch.log2(gaussian_likelihood(r, scales))
        z_bits = -torch.log2(model.z_density.likelihood(zq))
        return y_bits, z_bits, r + means
    yq = soft(y)
    return -torch.log2(model.y_density.likelihood(yq)), None, yq


def _loss(model, w: _Window, y, z, q, soft):
    y_bits, z_bits, y_hat = _bits_and_yhat(model, y, z, q, soft)
    x_hat = model.g_s((y_hat * model.gain_of(model.inv_gain, q)).contiguous(memory_format=torch.channels_last))
    pixels = w.pix.sum().clamp(min=1)
    mse = ((x_hat - w.x).square() * w.pix).sum() / (3 * pixels)
    bits = (y_bits * w.inner_y).sum()
    if z_bits is not None:
        bits = bits + (z_bits * w.inner_z).sum()
    return model.lambda_of(q)[0] * 255.0**2 * mse + bits / pixels


def refine(model, x: torch.Tensor, size: tuple[int, int], y: torch.Tensor, z: torch.Tensor | None, qi: int,
           level: Effort, tile: int = TILE, halo: int = HALO, bar=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Refined (y, z) for the padded uint8 image x (1, 3, H, W) whose real pixels are the top-left
    `size` = (h, w) (padding does not count); y, z: the analysis's scaled latents at quality index
    qi, on the model's device.  Returns new tensors; the inputs are not changed.  `bar`: a callable
    advanced once per step of each tile."""
    if level.steps <= 0:
        return y, z
    if tile % 4 or halo % 4:
        raise ValueError("tile and halo must be whole hyper-latent cells (multiples of 4 latents)")
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    q = torch.tensor([qi], device=y.device)
    y, z = y.detach().clone(), None if z is None else z.detach().clone()
    lh, lw = y.shape[-2:]
    with torch.enable_grad(), _frozen(model):
        for r in range(0, lh, tile):
            for c in range(0, lw, tile):
                w = _Window(x, size, y, z, slice(r, min(r + tile, lh)), slice(c, min(c + tile, lw)), halo)
                new = _refine_window(model, w, y[(...,) + w.wy], None if z is None else z[(...,) + w.wz], q, level,
                                     gen, bar)
                y[(...,) + w.wy] = new[0]
                if z is not None:
                    z[(...,) + w.wz] = new[1]
    return y, z


def tiles(latent_shape: tuple[int, int], tile: int = TILE) -> int:
    """How many tiles refine() works through for latents of this (height, width)."""
    return -(-latent_shape[0] // tile) * -(-latent_shape[1] // tile)


@contextlib.contextmanager
def _frozen(model):
    """The model's weights take no gradient while the latents are fitted (restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def _refine_window(model, w: _Window, y0, z0, q, level: Effort, gen, bar):
    with torch.no_grad():
        start = float(_loss(model, w, y0, z0, q, torch.round))
    params = [y0.clone().requires_grad_(True)]
    masks = [w.inner_y]
    if z0 is not None:
        params.append(z0.clone().requires_grad_(True))
        masks.append(w.inner_z)
    for p, m in zip(params, masks):  # the halo stays as it is: its gradient is dropped
        p.register_hook(lambda g, m=m: g * m)
    opt = torch.optim.Adam(params, lr=level.lr)
    for step in range(level.steps):
        tau = temperature(step, level.steps)
        loss = _loss(model, w, params[0], params[1] if z0 is not None else None, q,
                     lambda v: soft_round(v, tau, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar()
    y1 = params[0].detach()
    z1 = params[1].detach() if z0 is not None else None
    with torch.no_grad():
        end = float(_loss(model, w, y1, z1, q, torch.round))
    return (y1, z1) if end < start else (y0, z0)

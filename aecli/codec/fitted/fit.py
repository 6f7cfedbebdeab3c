"""Fitting one image: latents, ARM and synthesis by Adam on MSE + lambda * rate.

The latents are real numbers while fitting.  For most of the fit they are coded with additive
uniform noise (a differentiable stand-in for rounding); for the last iterations (`Recipe.rounded_iterations`)
they are rounded, with the gradient passed straight through, so that the networks learn the
rounded latents they will decode.  The learning rate follows a cosine from the recipe's rate down to nearly 0.
A time limit shortens the schedule (measured after the first iterations) rather than cutting it.

`finalise` then rounds everything: the latents to integers, each network's parameters to a
power-of-two step chosen to minimise the cost with the parameters' own bits counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import context, laplace
from .header import Structure, plane_sizes
from .nets import Arm, Synthesis, load_integers, quantise, tensors

WARMUP_ITERS = 5  # iterations timed before a time limit sets the schedule
EXPONENTS = tuple(range(5, 13))  # parameter steps 2**-5 .. 2**-12 tried by finalise


@dataclass(frozen=True)
class Recipe:
    """How a fit descends (benchmarks/fitted_recipe.py measures the choices on CBSD432 crops)."""

    lr: float = 2e-2  # the networks'
    latent_lr: float = 0.2  # the latents' (they need values of several units to carry much, in few iterations)
    ste_fraction: float = 0.1  # last share of the iterations on rounded latents (0.25 cost 16 to 39 points of rate at 300)
    ste_least: int = 25  # but at least this many (or a quarter of a shorter fit): at 100 iterations 10 were too few

    def rounded_iterations(self, total: int) -> int:
        """How many of `total` iterations run on rounded latents (the last ones)."""
        return max(round(self.ste_fraction * total), min(self.ste_least, total // 4))


@dataclass
class Progress:
    iteration: int
    total: int
    bpp: float
    psnr: float


@dataclass
class Fitted:
    structure: Structure
    planes: list[np.ndarray]  # integer latents, finest first
    ints: list[np.ndarray]  # every parameter tensor as integers
    bpp: float  # estimated, latents and parameters
    psnr: float  # of the quantised networks on the rounded latents (float synthesis)
    iterations: int
    seconds: float


class _Model:
    """The latents and networks of one fit, and the loss terms."""

    def __init__(self, x: torch.Tensor, s: Structure):
        self.x, self.s = x, s
        c, h, w = x.shape
        self.size = (h, w)
        self.pixels = h * w
        sizes = plane_sizes(w, h, s.levels)
        self.latents = [torch.zeros(a, b, requires_grad=True) for a, b in sizes]
        self.consts = [context.constants(a, b, k, s.levels) for k, (a, b) in enumerate(sizes)]
        self.arm, self.synth = Arm(s), Synthesis(s)

    def rate_bits(self, planes: list[torch.Tensor]) -> torch.Tensor:
        feats = torch.cat([context.plane_features(planes[k], planes[k + 1] if k + 1 < len(planes) else None, *self.consts[k])
                           for k in range(len(planes))])
        mu, t = self.arm(feats)
        return laplace.bits(torch.cat([p.reshape(-1) for p in planes]), mu, t).sum()

    def mse(self, planes: list[torch.Tensor]) -> torch.Tensor:
        return ((self.synth(planes, self.size)[0] - self.x) ** 2).mean()


def fit(x: torch.Tensor, lam: float, s: Structure, iterations: int, time_limit: float | None = None,
        report: Callable[[Progress], None] | None = None, seed: int = 0, recipe: Recipe = Recipe(),
        networks: tuple[dict, dict] | None = None) -> Fitted:
    """Fit image x (C, H, W) on 0..1 at rate weight `lam` (loss = MSE + lam * bpp); `networks`: state
    dicts (ARM, synthesis) to start from instead of a random start."""
    torch.manual_seed(seed)
    start = time.monotonic()
    m = _Model(x.float(), s)
    if networks is not None:
        m.arm.load_state_dict(networks[0])
        m.synth.load_state_dict(networks[1])
    opt = torch.optim.Adam([{"params": m.latents, "lr": recipe.latent_lr, "base": recipe.latent_lr},
                            {"params": [*m.arm.parameters(), *m.synth.parameters()], "lr": recipe.lr, "base": recipe.lr}])
    total = max(1, iterations)
    it = 0
    while it < total:
        frac = it / total
        for g in opt.param_groups:
            g["lr"] = g["base"] * (0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01)
        if it < total - recipe.rounded_iterations(total):
            planes = [y + torch.rand_like(y) - 0.5 for y in m.latents]
        else:
            planes = [y + (torch.round(y) - y).detach() for y in m.latents]
        rate = m.rate_bits(planes) / m.pixels
        mse = m.mse(planes)
        loss = mse + lam * rate
        rate, mse = rate.detach(), mse.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if time_limit and (it == WARMUP_ITERS or it % 50 == 0):
            per = (time.monotonic() - start) / it
            total = max(it, min(total, int(time_limit * 0.9 / per)))  # keep a tenth for the rounding and coding
        if report and (it % 10 == 0 or it == total):
            report(Progress(it, total, rate.item(), 10 * math.log10(1 / max(mse.item(), 1e-12))))
    return finalise(m, lam, it, time.monotonic() - start)


@torch.no_grad()
def finalise(m: _Model, lam: float, iterations: int, seconds: float) -> Fitted:
    """Round the latents and the parameters (choosing each network's step) and measure the result."""
    planes = [torch.round(y.detach()) for y in m.latents]
    params = tensors(m.arm, m.synth)
    floats = [p.detach().clone() for p in params]
    n_arm = m.s.arm_tensors()

    def set_network(lo, hi, e):
        ints = [quantise(floats[i], e) for i in range(lo, hi)]
        for i, q in zip(range(lo, hi), ints):
            params[i].view(-1).copy_(torch.from_numpy(q.reshape(-1) * 2.0**-e))
        return ints, sum(laplace.parameter_table(q)[1] for q in ints)

    best = {}
    for name, (lo, hi) in {"arm": (0, n_arm), "synth": (n_arm, len(params))}.items():
        costs = []
        for e in EXPONENTS:
            ints, bits = set_network(lo, hi, e)
            d = float(m.mse(planes)) if name == "synth" else 0.0
            r = float(m.rate_bits(planes)) if name == "arm" else 0.0
            costs.append((d + lam * (r + bits) / m.pixels, e, ints))
        _, e, ints = min(costs, key=lambda c: c[0])
        best[name] = (e, ints)
        set_network(lo, hi, e)
    ints = best["arm"][1] + best["synth"][1]
    exponents = (best["arm"][0],) * n_arm + (best["synth"][0],) * (len(params) - n_arm)
    tables = tuple(laplace.parameter_table(q)[0] for q in ints)
    s = Structure(**{**m.s.__dict__, "exponents": exponents, "tables": tables})
    load_integers(m.arm, m.synth, ints, exponents)
    bits = float(m.rate_bits(planes)) + sum(laplace.parameter_table(q)[1] for q in ints)
    mse = float(((m.synth(planes, m.size)[0].clamp(0, 1) * 255).round() / 255 - m.x).pow(2).mean())
    return Fitted(s, [p.to(torch.int64).numpy() for p in planes], ints, bits / m.pixels,
                  10 * math.log10(1 / max(mse, 1e-12)), iterations, seconds)

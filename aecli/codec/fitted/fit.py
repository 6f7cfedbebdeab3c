"""Fitting one image: latents, ARM and synthesis by Adam on MSE + lambda * rate.

The latents are real numbers while fitting.  They are coded through a soft rounding with Gaussian
noise, softround(softround(y, T) + n, T), whose temperature T and noise fall as the fit goes on, so
that the fit moves from a smooth stand-in for rounding towards rounding itself.  A recipe may end
with iterations on rounded latents, the gradient passed straight through (`Recipe.rounded_iterations`);
the recipe now has none (docs/fitted.md, "Recipe choices").  The learning
rate follows a cosine from the recipe's rate down to nearly 0.
A time limit shortens the schedule (measured after the first iterations) rather than cutting it.

`finalise` then rounds everything: the latents to integers, each network's parameters to a
power-of-two step chosen to minimise the cost with the parameters' own bits counted.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import context, laplace, rounding
from .header import Structure, plane_sizes
from .nets import Arm, Synthesis, load_integers, quantise, tensors
from .tables import parameter_table

WARMUP_ITERS = 5  # iterations timed before a time limit sets the schedule
EXPONENTS = tuple(range(4, 13))  # parameter steps 2**-4 .. 2**-12 tried by finalise
LAYER_SPAN = 2  # finalise tries each layer's step within this many of its network's...
LAYER_STEPS_FROM = 300  # ...in fits of at least this many iterations (a few seconds on a 768x512 image)
ROUNDING_LEVELS = 3  # finalise chooses the integers of the finest planes by their cost (rounding.py)...
ROUNDING_FROM = 50  # ...in fits of at least this many iterations (the search takes about 30 iterations' time)...
SEARCH_SHARE = 0.95  # ...beginning no more of it after this share of a time limit


@dataclass(frozen=True)
class Recipe:
    """How a fit descends (benchmarks/fitted_recipe.py measures the choices on CBSD432 crops)."""

    lr: float = 2e-2  # the networks'
    latent_lr: float = 0.2  # the latents' (they need values of several units to carry much, in few iterations)
    ste_fraction: float = 0.0  # last share of the iterations on rounded latents (none: docs/fitted.md)
    ste_least: int = 0  # but at least this many (or a quarter of a shorter fit)
    quantiser: str = "softround"  # the noisy phase's stand-in for rounding: "softround" or "uniform" noise
    temperature: tuple[float, float] = (0.5, 0.05)  # softround's temperature, first to last noisy iteration
    noise: tuple[float, float] = (0.25, 0.1)  # softround's Gaussian noise (standard deviation), likewise

    def __post_init__(self):
        if self.quantiser not in ("softround", "uniform"):
            raise ValueError(f"unknown quantiser {self.quantiser!r} (softround or uniform)")

    def rounded_iterations(self, total: int) -> int:
        """How many of `total` iterations run on rounded latents (the last ones)."""
        return max(round(self.ste_fraction * total), min(self.ste_least, total // 4))


@dataclass
class Progress:
    iteration: int
    total: int
    bpp: float
    psnr: float
    finishing: bool = False  # the iterations are done; the latents' and parameters' integers are being chosen


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
        self.latents = [torch.zeros(a, b, requires_grad=True) for a, b in plane_sizes(w, h, s.levels)]
        self.arm, self.synth = Arm(s), Synthesis(s)

    def rate_bits(self, planes: list[torch.Tensor]) -> torch.Tensor:
        """The bits of the latents, as the fit estimates them."""
        total = torch.zeros(())
        for k, y in enumerate(planes):
            total = total + self.arm.plane_bits(y, planes[k + 1] if k + 1 < len(planes) else None, k)
        return total

    def mse(self, planes: list[torch.Tensor]) -> torch.Tensor:
        return self.synth.mse(planes, self.size, self.x)

    def backward(self, planes: list[torch.Tensor], lam: float, pool: ThreadPoolExecutor | None) -> tuple[float, float]:
        """Gradients of MSE + lam * bpp into the latents and networks; (bpp, MSE).  The loss is two
        independent jobs on the same planes, of about the same cost: the rate (the ARM over every
        latent) and the distortion (the synthesis over every pixel).  With a pool they run at once,
        one core each (the many small operations of either barely use a second core); without one,
        one after the other.  Their gradients are summed in the same order either way, so the
        fit does not depend on the pool."""
        leaves = [p.detach().requires_grad_() for p in planes]
        nets = [*self.arm.parameters(), *self.synth.parameters()]
        targets = leaves + nets

        def job(rate: bool, distortion: bool):
            bits = self.rate_bits(leaves) if rate else torch.zeros(())
            mse = self.mse(leaves) if distortion else torch.zeros(())
            loss = mse + lam * bits / self.pixels
            grads = torch.autograd.grad(loss, targets, allow_unused=True) if loss.requires_grad else [None] * len(targets)
            return float(bits.detach()), float(mse.detach()), grads

        jobs = [(True, False), (False, True)]
        done = [pool.submit(job, *j) for j in jobs] if pool else None
        results = [d.result() for d in done] if done else [job(*j) for j in jobs]
        grads = []
        for i, t in enumerate(targets):
            parts = [r[2][i] for r in results if r[2][i] is not None]
            grads.append(sum(parts[1:], parts[0]) if parts else torch.zeros_like(t))
        torch.autograd.backward(planes, grads[:len(planes)])
        for t, g in zip(nets, grads[len(planes):]):
            t.grad = g
        return sum(r[0] for r in results) / self.pixels, sum(r[1] for r in results)


def pass_bits(arm: Arm, planes: list[torch.Tensor]) -> list[torch.Tensor]:
    """The bits of every latent, one tensor per (plane, pass), finest plane first, its passes in
    context.PHASES order: what the coder will spend on them (before the tables' rounding)."""
    return [laplace.bits(q, *arm(f, p, k)) for k, p, f, q in _passes(planes)]


def _passes(planes: list[torch.Tensor]):
    """(level, phase, compact features (n, F), latents (n,)) of every pass, finest plane first, its
    passes in context.PHASES order."""
    for k in range(len(planes)):
        y, coarse = planes[k], planes[k + 1] if k + 1 < len(planes) else None
        for p in range(len(context.PHASES)):
            yield k, p, context.phase_features(y, coarse, p, k, len(planes), compact=True), context.phase_values(y, p).reshape(-1)


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
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(2, thread_name_prefix="aecli-fit") if threads >= 2 else None
    if pool:
        torch.set_num_threads(1)  # one core per job (_Model.backward)
    try:
        it = _descend(m, opt, lam, recipe, total, start, time_limit, report, pool)
    finally:
        if pool:
            pool.shutdown()
            torch.set_num_threads(threads)
    if report:
        report(Progress(it, it, math.nan, math.nan, finishing=True))
    deadline = start + SEARCH_SHARE * time_limit if time_limit else None
    return finalise(m, lam, it, time.monotonic() - start, per_layer=it >= LAYER_STEPS_FROM,
                    rounding_levels=ROUNDING_LEVELS if it >= ROUNDING_FROM else 0, deadline=deadline)


def _descend(m: _Model, opt: torch.optim.Optimizer, lam: float, recipe: Recipe, total: int, start: float,
             time_limit: float | None, report: Callable[[Progress], None] | None, pool: ThreadPoolExecutor | None) -> int:
    """The fit's iterations; how many ran."""
    it = 0
    while it < total:
        frac = it / total
        for g in opt.param_groups:
            g["lr"] = g["base"] * (0.5 * (1 + math.cos(math.pi * frac)) * 0.99 + 0.01)
        noisy = total - recipe.rounded_iterations(total)
        if it < noisy:
            planes = [_noisy(y, recipe, it / max(1, noisy - 1)) for y in m.latents]
        else:
            planes = [y + (torch.round(y) - y).detach() for y in m.latents]
        opt.zero_grad(set_to_none=True)
        rate, mse = m.backward(planes, lam, pool)
        opt.step()
        it += 1
        if time_limit and (it == WARMUP_ITERS or it % 50 == 0):
            per = (time.monotonic() - start) / it
            total = max(it, min(total, int(time_limit * 0.9 / per)))  # keep a tenth for the rounding and coding
        if report and (it % 10 == 0 or it == total):
            report(Progress(it, total, rate, 10 * math.log10(1 / max(mse, 1e-12))))
    return it


def softround(y: torch.Tensor, t: float) -> torch.Tensor:
    """A differentiable rounding: round(y) as t -> 0, y as t grows."""
    f = torch.floor(y)
    return f + 0.5 + 0.5 * torch.tanh((y - f - 0.5) / t) / math.tanh(0.5 / t)


def _noisy(y: torch.Tensor, recipe: Recipe, frac: float) -> torch.Tensor:
    """The latents as the noisy phase codes them, `frac` of the way through it."""
    if recipe.quantiser == "uniform":
        return y + torch.rand_like(y) - 0.5
    t = recipe.temperature[0] + frac * (recipe.temperature[1] - recipe.temperature[0])
    sd = recipe.noise[0] + frac * (recipe.noise[1] - recipe.noise[0])
    return softround(softround(y, t) + sd * torch.randn_like(y), t)


@torch.no_grad()
def finalise(m: _Model, lam: float, iterations: int, seconds: float, per_layer: bool = True,
             rounding_levels: int = ROUNDING_LEVELS, deadline: float | None = None) -> Fitted:
    """Round the latents and the parameters and measure the result.  Each network's step is chosen
    first for the whole network, from EXPONENTS, by the cost it gives (distortion or latent rate,
    plus the parameters' own bits); then, with `per_layer`, each layer's (its weight and bias
    together: the integer ARM needs one step per layer) within LAYER_SPAN of it, the others held.
    Last, with the networks at their integers, the latents of the finest `rounding_levels` planes
    may move off their nearest integers where that lowers the cost (rounding.improve; none of its
    work begun after `deadline`, a time.monotonic())."""
    planes = [torch.round(y.detach()) for y in m.latents]
    params = tensors(m.arm, m.synth)
    floats = [p.detach().clone() for p in params]
    n_arm = m.s.arm_tensors()
    exps = [0] * len(params)
    ints: list[np.ndarray] = [np.zeros(0)] * len(params)

    def set_tensors(idx, e):
        for i in idx:
            exps[i], ints[i] = e, quantise(floats[i], e)
            params[i].view(-1).copy_(torch.from_numpy(ints[i].reshape(-1) * 2.0**-e))

    def cost(name, lo, hi):
        d = float(m.mse(planes)) if name == "synth" else 0.0
        r = float(m.rate_bits(planes)) if name == "arm" else 0.0
        return d + lam * (r + sum(parameter_table(ints[i])[1] for i in range(lo, hi))) / m.pixels

    for name, (lo, hi) in {"arm": (0, n_arm), "synth": (n_arm, len(params))}.items():
        costs = []
        for e in EXPONENTS:
            set_tensors(range(lo, hi), e)
            costs.append((cost(name, lo, hi), e))
        best, e = min(costs)
        set_tensors(range(lo, hi), e)
        if per_layer:
            for layer in range(lo, hi, 2):
                idx = range(layer, min(layer + 2, hi))
                keep = exps[layer]
                for cand in range(max(EXPONENTS[0], e - LAYER_SPAN), min(EXPONENTS[-1], e + LAYER_SPAN) + 1):
                    if cand == keep:
                        continue
                    set_tensors(idx, cand)
                    c = cost(name, lo, hi)
                    if c < best:
                        best, keep = c, cand
                set_tensors(idx, keep)
    exponents = tuple(exps)
    tables = tuple(parameter_table(q)[0] for q in ints)
    s = Structure(**{**m.s.__dict__, "exponents": exponents, "tables": tables})
    load_integers(m.arm, m.synth, ints, exponents)
    if rounding_levels:
        rounding.improve(m.arm, m.synth, m.x, [y.detach() for y in m.latents], planes, lam,
                         list(range(min(rounding_levels, len(planes)))), sweeps=1, deadline=deadline)
    bits = float(m.rate_bits(planes)) + sum(parameter_table(q)[1] for q in ints)
    mse = float(((m.synth(planes, m.size)[0].clamp(0, 1) * 255).round() / 255 - m.x).pow(2).mean())
    return Fitted(s, [p.to(torch.int64).numpy() for p in planes], ints, bits / m.pixels,
                  10 * math.log10(1 / max(mse, 1e-12)), iterations, seconds)

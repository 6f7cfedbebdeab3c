"""The fit's likelihood of a coded integer under the fitted codec's Laplace model (tables.py
describes the model and builds the coder's integer tables from it): -log2 of the mass of the unit
bin around q, differentiable in q, the mean and the scale level.
"""

from __future__ import annotations

import math

import torch

from .header import SCALE_LEVELS
from .tables import B_MIN, STEP

PROB_FLOOR = 2.0 ** -16


def scale_of(t: torch.Tensor) -> torch.Tensor:
    """Laplace scale b from the ARM's scale output t (in table steps), clamped to the tables' range."""
    return torch.exp(math.log(B_MIN) + t.clamp(0, SCALE_LEVELS - 1) * STEP)


def _cdf(v: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 - 0.5 * torch.sign(v) * torch.expm1(-v.abs() / b)


def bits(q: torch.Tensor, mu: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """-log2 P(q) for each (real or integer) q under Laplace(mu, scale_of(t)); differentiable."""
    b = scale_of(t)
    v = q - mu
    # the mass of the bin, taken on the side nearer the mean (no cancellation in the far tail)
    v = -v.abs()
    p = _cdf(v + 0.5, b) - _cdf(v - 0.5, b)
    return -torch.log2(p.clamp_min(PROB_FLOOR))

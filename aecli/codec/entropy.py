"""Entropy models of the codec.

Two learned priors:

* `FactorizedDensity`: a per-channel non-parametric density (Balle et al., 2018), used for the
  hyper-latent z (and for y in the factorized model).
* `gaussian_likelihood` with a fixed `scale_table`: the conditional Gaussian used for y given
  the hyperprior's scale and mean.

At export time both are turned into integer probability tables (`Tables`), stored in the
weights file.  Encoder and decoder only ever read those stored integers, so the coded
probabilities are bit-identical on every machine.  The actual range coding is in
`aecli.codec.coding` and uses constriction.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .coding import quantize_pmf
from .layers import lower_bound, placed

# Scales of the conditional Gaussian's tables (CompressAI's choice): 64 log-spaced values.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
# Mass left out in the tails of each table; symbols out there are escaped.
TAIL_MASS = 1e-9
LIKELIHOOD_FLOOR = 1e-9


def scale_table() -> torch.Tensor:
    return torch.exp(
        torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64)
    )


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2.0**-0.5))


def gaussian_likelihood(residual: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """P(round(v) = v) for v = y - mean ~ N(0, scale), on the unit bin around v."""
    scales = lower_bound(scales, SCALE_MIN)
    v = residual.abs()
    upper = _std_normal_cdf((0.5 - v) / scales)
    lower = _std_normal_cdf((-0.5 - v) / scales)
    return lower_bound(upper - lower, LIKELIHOOD_FLOOR)


def gaussian_tables() -> tuple[list[np.ndarray], np.ndarray]:
    """Integer tables for each scale of scale_table(): (pmfs, offsets).

    Table i covers symbols -R_i .. R_i (index 0 = -R_i); its last entry is the escape symbol.
    """
    tail = -torch.special.ndtri(torch.tensor(TAIL_MASS / 2, dtype=torch.float64)).item()
    pmfs, offsets = [], []
    for s in scale_table().tolist():
        r = int(math.ceil(tail * s))
        q = torch.arange(-r, r + 1, dtype=torch.float64)
        pmf = _std_normal_cdf((q + 0.5) / s) - _std_normal_cdf((q - 0.5) / s)
        escape = 2.0 * _std_normal_cdf(torch.tensor(-(r + 0.5) / s, dtype=torch.float64)).item()
        pmfs.append(quantize_pmf(pmf.numpy(), escape))
        offsets.append(-r)
    return pmfs, np.asarray(offsets, dtype=np.int32)


class FactorizedDensity(nn.Module):
    """Per-channel learned cumulative density (the 'entropy bottleneck')."""

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1).sub_(0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # Lower tail, median and upper tail of each channel, learned by aux_loss().
        self.quantiles = nn.Parameter(
            placed(torch.tensor([-init_scale, 0.0, init_scale], device="cpu").repeat(channels, 1, 1))
        )
        self.register_buffer(
            "_tail_target",
            torch.tensor([-math.log(2 / TAIL_MASS - 1), 0.0, math.log(2 / TAIL_MASS - 1)]),
            persistent=False,
        )

    def logits_cumulative(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """x: (C, 1, K) -> logits of the CDF, same shape."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            if detach:
                m, b = m.detach(), b.detach()
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                f = self.factors[i].detach() if detach else self.factors[i]
                x = x + torch.tanh(f) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability of each (noisy or rounded) value in z: (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cumulative(v - 0.5)
        upper = self.logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        lik = lik.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return lower_bound(lik, LIKELIHOOD_FLOOR)

    def aux_loss(self) -> torch.Tensor:
        """Moves `quantiles` to the 1e-9 tails and the median; touches nothing else."""
        logits = self.logits_cumulative(self.quantiles, detach=True)
        return (logits - self._tail_target.view(1, 1, 3)).abs().sum()

    @torch.no_grad()
    def tables(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Integer tables per channel: (pmfs with escape last, offsets)."""
        q = self.quantiles.detach().double()
        lo = torch.floor(q[:, 0, 0]).long().clamp(-4096, 0)
        hi = torch.ceil(q[:, 0, 2]).long().clamp(0, 4096)
        pmfs, offsets = [], []
        density = self.double()
        try:
            for c in range(self.channels):
                support = torch.arange(int(lo[c]), int(hi[c]) + 1, dtype=torch.float64)
                x = torch.cat([support - 0.5, support[-1:] + 0.5]).view(1, 1, -1)
                xs = x.expand(self.channels, 1, -1)
                logits = density.logits_cumulative(xs)[c, 0]
                cdf = torch.sigmoid(logits)
                pmf = (cdf[1:] - cdf[:-1]).clamp_min(0)
                escape = float(cdf[0]) + float(1 - cdf[-1])
                pmfs.append(quantize_pmf(pmf.numpy(), escape))
                offsets.append(int(lo[c]))
        finally:
            self.float()
        return pmfs, np.asarray(offsets, dtype=np.int32)


def pack_tables(pmfs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """List of 1-D count arrays -> (all counts concatenated, int32 lengths)."""
    lengths = np.asarray([len(p) for p in pmfs], dtype=np.int32)
    return np.concatenate(pmfs).astype(np.int32), lengths

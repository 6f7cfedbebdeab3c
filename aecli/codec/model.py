"""The codec's models: a mean-scale hyperprior (default) and a factorized prior.

Both are variable-rate: one network serves every quality level through per-quality channel
gains on the latent (and hyper-latent), learned jointly with a different rate-distortion
trade-off lambda per quality ("gain units", Cui et al., 2021).  Training draws a quality per
sample; at inference the quality picks the gain vectors.

Shapes: x (B, 3, H, W) in [0, 1] with H, W multiples of `model.align`;
y (B, M, H/16, W/16); z (B, N, H/64, W/64).
"""

from __future__ import annotations

import torch
from torch import nn

from . import entropy, intnet
from .entropy import FactorizedDensity, gaussian_likelihood
from .layers import GDN, conv, deconv

# CompressAI's MSE lambdas for its qualities 1..8 (loss = lambda * 255^2 * MSE + bpp).
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
Z_LIMIT = 1 << 10  # hyper-latent symbols are clamped to +-Z_LIMIT


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m)
    )


def synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


class _GainedCodec(nn.Module):
    """Shared parts: transforms, quality gains, configuration."""

    kind = ""
    align = 16

    def __init__(self, n: int, m: int, lambdas=LAMBDAS):
        super().__init__()
        self.n, self.m = n, m
        self.lambdas = tuple(float(v) for v in lambdas)
        q = len(self.lambdas)
        self.g_a = analysis(n, m)
        self.g_s = synthesis(n, m)
        # log-gains per quality, spread so that higher quality starts with finer quantisation
        init = torch.linspace(-1.0, 1.0, q).unsqueeze(1)
        self.gain = nn.Parameter(init.repeat(1, m))
        self.inv_gain = nn.Parameter(-init.repeat(1, m))

    @property
    def qualities(self) -> int:
        return len(self.lambdas)

    def config(self) -> dict:
        return {"kind": self.kind, "n": self.n, "m": self.m, "lambdas": list(self.lambdas)}

    @staticmethod
    def _pick(table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.exp(table[q]).unsqueeze(-1).unsqueeze(-1)

    def lambda_of(self, q: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.lambdas, device=q.device)[q]


class HyperpriorCodec(_GainedCodec):
    """Mean-scale hyperprior (Minnen et al., 2018, without context model)."""

    kind = "hyperprior"
    align = 64

    def __init__(self, n: int = 64, m: int = 128, lambdas=LAMBDAS):
        super().__init__(n, m, lambdas)
        q = self.qualities
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n)
        )
        self.h_s = nn.Sequential(
            deconv(n, m), nn.ReLU(inplace=True), deconv(m, m * 3 // 2), nn.ReLU(inplace=True),
            conv(m * 3 // 2, 2 * m, 3, 1),
        )
        self.z_density = FactorizedDensity(n)
        init = torch.linspace(-0.5, 0.5, q).unsqueeze(1)
        self.hgain = nn.Parameter(init.repeat(1, n))
        self.inv_hgain = nn.Parameter(-init.repeat(1, n))

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict:
        y = self.g_a(x) * self._pick(self.gain, q)
        z = self.h_a(y) * self._pick(self.hgain, q)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_hat = ste_round(z)
        params = self.h_s(z_hat * self._pick(self.inv_hgain, q))
        scales, means = params.chunk(2, dim=1)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_lik = gaussian_likelihood(y_noisy - means, scales)
        z_lik = self.z_density.likelihood(z_noisy)
        y_hat = ste_round(y - means) + means
        x_hat = self.g_s(y_hat * self._pick(self.inv_gain, q))
        return {"x_hat": x_hat, "likelihoods": (y_lik, z_lik)}

    def aux_loss(self) -> torch.Tensor:
        return self.z_density.aux_loss()


class FactorizedCodec(_GainedCodec):
    """Factorized prior (Balle et al., 2018 'bmshj2018-factorized'), variable rate."""

    kind = "factorized"
    align = 16

    def __init__(self, n: int = 64, m: int = 128, lambdas=LAMBDAS):
        super().__init__(n, m, lambdas)
        self.y_density = FactorizedDensity(m)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict:
        y = self.g_a(x) * self._pick(self.gain, q)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_lik = self.y_density.likelihood(y_noisy)
        y_hat = ste_round(y)
        x_hat = self.g_s(y_hat * self._pick(self.inv_gain, q))
        return {"x_hat": x_hat, "likelihoods": (y_lik,)}

    def aux_loss(self) -> torch.Tensor:
        return self.y_density.aux_loss()


KINDS = {"hyperprior": HyperpriorCodec, "factorized": FactorizedCodec}


def build(config: dict) -> _GainedCodec:
    cls = KINDS[config["kind"]]
    return cls(int(config["n"]), int(config["m"]), tuple(config["lambdas"]))


def export_tensors(model: _GainedCodec) -> dict[str, torch.Tensor]:
    """Everything inference needs: float transforms plus the integer tables/networks."""
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    if isinstance(model, HyperpriorCodec):
        zp, zo = model.z_density.tables()
        pad, lens = entropy.pack_tables(zp)
        tensors["tables.z.pmf"] = torch.from_numpy(pad)
        tensors["tables.z.len"] = torch.from_numpy(lens)
        tensors["tables.z.offset"] = torch.from_numpy(zo)
        yp, yo = entropy.gaussian_tables()
        pad, lens = entropy.pack_tables(yp)
        tensors["tables.y.pmf"] = torch.from_numpy(pad)
        tensors["tables.y.len"] = torch.from_numpy(lens)
        tensors["tables.y.offset"] = torch.from_numpy(yo)
        thresholds = torch.floor(entropy.scale_table() * 2.0**intnet.ACT_BITS).to(torch.int64)
        tensors["tables.y.thresholds"] = thresholds
        ihg = torch.round(torch.exp(model.inv_hgain.detach().double()) * 2.0**intnet.ACT_BITS)
        tensors["int.inv_hgain"] = ihg.to(torch.int64)
        for k, v in intnet.export(model.h_s).items():
            tensors[f"int.h_s.{k}"] = v
    else:
        yp, yo = model.y_density.tables()
        pad, lens = entropy.pack_tables(yp)
        tensors["tables.y.pmf"] = torch.from_numpy(pad)
        tensors["tables.y.len"] = torch.from_numpy(lens)
        tensors["tables.y.offset"] = torch.from_numpy(yo)
    return tensors

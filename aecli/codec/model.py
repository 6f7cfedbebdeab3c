"""The codec's models: a mean-scale hyperprior (default), the same with a checkerboard context
model, and a factorized prior.

Both are variable-rate: one network serves every quality level through per-quality channel
gains on the latent (and hyper-latent), learned jointly with a different rate-distortion
trade-off lambda per quality ("gain units", Cui et al., 2021).  Training draws a quality per
sample; at inference the quality picks the gain vectors.

Shapes: x (B, 3, H, W) in [0, 1] with H, W multiples of `model.align`;
y (B, M, H/16, W/16); z (B, N, H/64, W/64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import entropy, intnet
from .entropy import FactorizedDensity, gaussian_likelihood
from .layers import GDN, conv, deconv, placed

# CompressAI's MSE lambdas for its qualities 1..8 (loss = lambda * 255^2 * MSE + bpp): the levels of
# every codec checkpoint that does not record its own (TrainConfig.extra["lambdas"]).
COMPRESSAI_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# aecli's levels: three lower ones first, so that quality 1 reaches about 0.1 bpp on Kodak24
LAMBDAS = (0.00025, 0.0005, 0.0009) + COMPRESSAI_LAMBDAS
DEFAULT_LAMBDA = 0.025  # a model's default quality is the level nearest to this lambda


Z_LIMIT = 1 << 10  # hyper-latent symbols are clamped to +-Z_LIMIT


def default_quality(lambdas, qualities) -> int:
    """The quality whose lambda is nearest (in log scale) to DEFAULT_LAMBDA."""
    best = min(range(len(lambdas)), key=lambda i: abs(math.log(lambdas[i] / DEFAULT_LAMBDA)))
    return list(qualities)[best]


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def rate_proxy(v: torch.Tensor, training: bool) -> torch.Tensor:
    """Where the likelihoods are taken: v plus uniform noise in training (a differentiable stand-in
    for rounding), round(v) otherwise, so that a model in eval mode reports the code length of the
    symbols actually coded (at low rates the noisy estimate is several times larger)."""
    if training:
        return v + torch.empty_like(v).uniform_(-0.5, 0.5)
    return torch.round(v)


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
        init = torch.linspace(-1.0, 1.0, q, device="cpu").unsqueeze(1)
        self.gain = nn.Parameter(placed(init.repeat(1, m)))
        self.inv_gain = nn.Parameter(placed(-init.repeat(1, m)))

    @property
    def qualities(self) -> int:
        return len(self.lambdas)

    def config(self) -> dict:
        return {"kind": self.kind, "n": self.n, "m": self.m, "lambdas": list(self.lambdas)}

    @staticmethod
    def gain_of(table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """The per-channel gains of the qualities `q` (B,) from a log-gain table, as (B, C, 1, 1)."""
        return torch.exp(table[q]).unsqueeze(-1).unsqueeze(-1)

    def lambda_of(self, q: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.lambdas, device=q.device)[q]


class HyperpriorCodec(_GainedCodec):
    """Mean-scale hyperprior (Minnen et al., 2018, without context model)."""

    kind = "hyperprior"
    align = 64

    def __init__(self, n: int = 64, m: int = 128, lambdas=LAMBDAS, nh: int | None = None):
        super().__init__(n, m, lambdas)
        q = self.qualities
        nh = n if nh is None else nh  # width of the hyper-transforms and hyper-latent (z) channels
        self.nh = nh
        self.h_a = nn.Sequential(
            conv(m, nh, 3, 1), nn.LeakyReLU(inplace=True), conv(nh, nh), nn.LeakyReLU(inplace=True), conv(nh, nh)
        )
        self.h_s = nn.Sequential(
            deconv(nh, m), nn.ReLU(inplace=True), deconv(m, m * 3 // 2), nn.ReLU(inplace=True),
            conv(m * 3 // 2, 2 * m, 3, 1),
        )
        self.z_density = FactorizedDensity(nh)
        init = torch.linspace(-0.5, 0.5, q, device="cpu").unsqueeze(1)
        self.hgain = nn.Parameter(placed(init.repeat(1, nh)))
        self.inv_hgain = nn.Parameter(placed(-init.repeat(1, nh)))

    def config(self) -> dict:
        c = super().config()
        if self.nh != self.n:  # (a model whose hyper width is n records no "nh")
            c["nh"] = self.nh
        return c

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict:
        y = self.g_a(x) * self.gain_of(self.gain, q)
        z = self.h_a(y) * self.gain_of(self.hgain, q)
        z_hat = ste_round(z)
        params = self.h_s(z_hat * self.gain_of(self.inv_hgain, q))
        scales, means = self.condition(y, params, ste_round)
        y_lik = gaussian_likelihood(rate_proxy(y - means, self.training), scales)
        z_lik = self.z_density.likelihood(rate_proxy(z, self.training))
        y_hat = ste_round(y - means) + means
        x_hat = self.g_s(y_hat * self.gain_of(self.inv_gain, q))
        return {"x_hat": x_hat, "likelihoods": (y_lik, z_lik)}

    def condition(self, y: torch.Tensor, params: torch.Tensor, rnd) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of the Gaussian of every latent, from the hyper-synthesis output `params`
        (the context model below also looks at the latents y, rounded by `rnd`)."""
        return params.chunk(2, dim=1)

    def aux_loss(self) -> torch.Tensor:
        return self.z_density.aux_loss()


def anchors(h: int, w: int, device=None) -> torch.Tensor:
    """The checkerboard's first half: (1, 1, h, w), 1 where (row + column) is even."""
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return ((i + j) % 2 == 0).to(torch.float32).view(1, 1, h, w)


class CheckerboardCodec(HyperpriorCodec):
    """The mean-scale hyperprior with a checkerboard context model (He et al., 2021).

    The latents are coded in two halves.  The anchors ((row + column) even) take their Gaussian's
    parameters from the hyperprior alone; the other half also sees the decoded anchors around it
    through a 5x5 convolution (`ctx`).  Both halves' parameters come from the same 1x1 network
    (`ep`) as a correction added to the hyper-synthesis output, with a zero context for the
    anchors; its last layer starts at zero, so a new model starts as its hyperprior.  Decoding
    is two passes (anchors, then the rest), each fully parallel."""

    kind = "checkerboard"

    def __init__(self, n: int = 64, m: int = 128, lambdas=LAMBDAS, nh: int | None = None):
        super().__init__(n, m, lambdas, nh)
        self.ctx = conv(m, 2 * m, 5, 1)
        self.ep = nn.Sequential(
            conv(4 * m, 3 * m, 1, 1), nn.ReLU(inplace=True), conv(3 * m, 5 * m // 2, 1, 1), nn.ReLU(inplace=True),
            conv(5 * m // 2, 2 * m, 1, 1),
        )
        nn.init.zeros_(self.ep[-1].weight)
        nn.init.zeros_(self.ep[-1].bias)

    def params(self, hyper: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return hyper + self.ep(torch.cat([hyper, context], dim=1))

    def condition(self, y, params, rnd):
        a = anchors(*y.shape[-2:], device=y.device)
        scales_a, means_a = self.params(params, torch.zeros_like(params)).chunk(2, dim=1)
        y_anchor = (rnd(y - means_a) + means_a) * a
        scales_b, means_b = self.params(params, self.ctx(y_anchor)).chunk(2, dim=1)
        return scales_a * a + scales_b * (1 - a), means_a * a + means_b * (1 - a)


class FactorizedCodec(_GainedCodec):
    """Factorized prior (Balle et al., 2018 'bmshj2018-factorized'), variable rate."""

    kind = "factorized"
    align = 16

    def __init__(self, n: int = 64, m: int = 128, lambdas=LAMBDAS):
        super().__init__(n, m, lambdas)
        self.y_density = FactorizedDensity(m)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> dict:
        y = self.g_a(x) * self.gain_of(self.gain, q)
        y_lik = self.y_density.likelihood(rate_proxy(y, self.training))
        y_hat = ste_round(y)
        x_hat = self.g_s(y_hat * self.gain_of(self.inv_gain, q))
        return {"x_hat": x_hat, "likelihoods": (y_lik,)}

    def aux_loss(self) -> torch.Tensor:
        return self.y_density.aux_loss()


KINDS = {"hyperprior": HyperpriorCodec, "checkerboard": CheckerboardCodec, "factorized": FactorizedCodec}


MAX_WIDTH = 4096  # channels of any transform (the bundled models have 64 and 128)
MAX_LEVELS = 255  # quality levels (a .lat file stores the quality in one byte)


def check_config(config) -> dict:
    """An architecture as stored in a model's JSON, checked and bounded before anything is built:
    kind, widths n, m (and nh) of 1..MAX_WIDTH, 1..MAX_LEVELS positive finite lambdas.  ValueError
    with one line otherwise."""
    if not isinstance(config, dict):
        raise ValueError("the architecture must be an object")
    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown codec kind {kind!r} (one of {', '.join(KINDS)})")
    widths = {k: config.get(k) for k in ("n", "m", "nh")}
    for k, v in widths.items():
        if v is None and k == "nh":
            continue
        if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH):
            raise ValueError(f"{k} must be an integer 1..{MAX_WIDTH}, not {v!r}")
    if widths["nh"] is not None and not issubclass(KINDS[kind], HyperpriorCodec):
        raise ValueError("only a hyperprior model has a hyper width (nh)")
    lambdas = config.get("lambdas")
    if not (isinstance(lambdas, (list, tuple)) and 1 <= len(lambdas) <= MAX_LEVELS and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in lambdas)):
        raise ValueError(f"lambdas must be a list of 1..{MAX_LEVELS} positive numbers")
    return {"kind": kind, **{k: v for k, v in widths.items() if v is not None}, "lambdas": [float(v) for v in lambdas]}


def build(config: dict) -> _GainedCodec:
    c = check_config(config)
    cls = KINDS[c["kind"]]
    if c.get("nh") is not None:
        return cls(c["n"], c["m"], tuple(c["lambdas"]), c["nh"])
    return cls(c["n"], c["m"], tuple(c["lambdas"]))


# ---- widening a trained model ---------------------------------------------------------------------

def _grow(old: torch.Tensor, shape, fresh: torch.Tensor, keep: tuple, zero: tuple = ()) -> torch.Tensor:
    """A tensor of `shape` holding `old` in its leading corner (`keep` = its slices), `fresh` values
    elsewhere, and zeros in the `zero` slices (connections from new channels into old ones)."""
    out = fresh.clone().reshape(shape)
    out[keep] = old
    for z in zero:
        out[z] = 0
    return out


def widened(model: HyperpriorCodec | FactorizedCodec, n: int, seed: int = 0) -> _GainedCodec:
    """The same codec with analysis/synthesis transforms `n` channels wide (hyper part unchanged).

    Function-preserving: the new channels start from a fresh initialisation, and every connection
    from a new channel into an old one (convolution weights, GDN gammas) starts at zero, so the
    widened model computes what the old one did (up to float summation order) and training grows
    the new capacity from there. The latent (M) keeps its width: new latent channels would be
    quantised to zero and never receive a gradient."""
    old_n = model.n
    if n <= old_n:
        raise ValueError(f"the new width ({n}) must be larger than the old one ({old_n})")
    cfg = model.config()
    cfg.update(n=n)
    if isinstance(model, HyperpriorCodec):
        cfg["nh"] = model.nh
    torch.manual_seed(seed)
    new = build(cfg)
    fresh = new.state_dict()
    state = dict(model.state_dict())
    ped = 2.0**-18
    o = slice(0, old_n)
    for prefix in ("g_a", "g_s"):
        for name, t in model.state_dict().items():
            if not name.startswith(prefix + "."):
                continue
            f = fresh[name]
            if t.shape == f.shape:
                continue
            if name.endswith(".beta"):
                state[name] = _grow(t, f.shape, f, (o,))
            elif name.endswith(".gamma"):  # gamma[i, j]: channel j's weight in channel i's norm
                g = _grow(t, f.shape, f, (o, o))
                g[o, old_n:] = ped**0.5  # old channels ignore new ones (stored sqrt(0 + pedestal))
                state[name] = g
            elif name.endswith(".bias"):
                state[name] = _grow(t, f.shape, f, (o,))
            elif name.endswith(".weight"):
                conv_t = prefix == "g_s"  # ConvTranspose2d weights are (in, out, k, k)
                d_out, d_in = (1, 0) if conv_t else (0, 1)
                keep = [slice(None)] * 4
                zero = [slice(None)] * 4
                grow_out, grow_in = t.shape[d_out] != f.shape[d_out], t.shape[d_in] != f.shape[d_in]
                if grow_out:
                    keep[d_out] = o
                if grow_in:
                    keep[d_in] = o
                    zero[d_in] = slice(old_n, None)
                    zero[d_out] = slice(0, t.shape[d_out])  # old (or all, if not grown) outputs
                state[name] = _grow(t, f.shape, f, tuple(keep), (tuple(zero),) if grow_in else ())
    new.load_state_dict(state)
    return new


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
        if isinstance(model, CheckerboardCodec):
            for name, seq in (("ctx", nn.Sequential(model.ctx)), ("ep", model.ep)):
                for k, v in intnet.export(seq).items():
                    tensors[f"int.{name}.{k}"] = v
    else:
        yp, yo = model.y_density.tables()
        pad, lens = entropy.pack_tables(yp)
        tensors["tables.y.pmf"] = torch.from_numpy(pad)
        tensors["tables.y.len"] = torch.from_numpy(lens)
        tensors["tables.y.offset"] = torch.from_numpy(yo)
    return tensors

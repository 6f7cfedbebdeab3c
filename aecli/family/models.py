"""The autoencoder family's networks, built from one JSON-able config dict.

    kind         encoder -> code                         decoder            trained as (aecli/family/train.py)
    dense        Linear layers (relu), code relu          mirror, sigmoid    reconstruction (the seed's vanilla AE)
    sparse       as dense; code sigmoid with KL sparsity  mirror, sigmoid    + L1 or KL penalty on the code
    contractive  as dense, code sigmoid                   mirror, sigmoid    + lambda * ||d code / d x||_F^2
    conv         stride-2 3x3 convs, then Linear          mirror, sigmoid    reconstruction
    denoising    as conv                                  mirror, sigmoid    clean target from a corrupted input
    vae          Linear layers -> (mu, log variance)      mirror, sigmoid    ELBO: reconstruction + beta * KL

Images are (B, C, H, W) on the 0..1 scale. Every model has `encode(x)` (the code used by embed:
the mean for a VAE), `decode(z)` and `forward(x)` (reconstruction; a VAE samples z in training
and uses the mean in eval mode). `config()` round-trips through `build()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("dense", "conv", "vae", "sparse", "contractive", "denoising")
CONV_KINDS = ("conv", "denoising")


def default_config(kind: str, shape: tuple[int, int, int], latent: int) -> dict:
    """A model config with this kind's default layers for images of `shape` (C, H, W)."""
    if kind not in KINDS:
        raise ValueError(f"unknown autoencoder kind {kind!r}")
    cfg = {"kind": kind, "shape": [int(s) for s in shape], "latent": int(latent), "hidden": [], "dropout": 0.0,
           "code_activation": "relu", "channels": []}
    if kind == "vae":
        cfg["hidden"] = [512]
        cfg["code_activation"] = "linear"
    elif kind == "contractive":
        cfg["code_activation"] = "sigmoid"
    elif kind in CONV_KINDS:
        cfg["channels"] = [32, 64]
        cfg["code_activation"] = "linear"
    return cfg


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "sigmoid": nn.Sigmoid(), "linear": nn.Identity(), "tanh": nn.Tanh()}[name]


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear+ReLU(+Dropout) for each step of `sizes` (no layer when len(sizes) == 1)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """Dense or convolutional autoencoder (and the VAE) from a config dict."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        c, h, w = cfg["shape"]
        self.kind = cfg["kind"]
        self.latent = int(cfg["latent"])
        hidden = [int(v) for v in cfg.get("hidden", [])]
        drop = float(cfg.get("dropout", 0.0))
        channels = [int(v) for v in cfg.get("channels", [])]
        self.is_vae = self.kind == "vae"
        if channels:  # convolutional body: stride-2 3x3 convs, remember the sizes to undo them exactly
            sizes = [(h, w)]
            enc: list[nn.Module] = []
            prev = c
            for ch in channels:
                enc += [nn.Conv2d(prev, ch, 3, stride=2, padding=1), nn.ReLU()]
                prev = ch
                sh, sw = sizes[-1]
                sizes.append(((sh - 1) // 2 + 1, (sw - 1) // 2 + 1))
            self.enc_body = nn.Sequential(*enc, nn.Flatten())
            flat = channels[-1] * sizes[-1][0] * sizes[-1][1]
            self.unflatten = nn.Unflatten(1, (channels[-1], *sizes[-1]))
            dec: list[nn.Module] = []
            rev = channels[::-1]
            for i, ch in enumerate(rev):
                nxt = rev[i + 1] if i + 1 < len(rev) else c
                (ih, iw), (th, tw) = sizes[len(rev) - i], sizes[len(rev) - i - 1]
                dec.append(nn.ConvTranspose2d(ch, nxt, 3, stride=2, padding=1,
                                              output_padding=(th - (2 * ih - 1), tw - (2 * iw - 1))))
                if nxt != c:
                    dec.append(nn.ReLU())
            self.dec_body = nn.Sequential(*dec)
        else:
            self.enc_body = nn.Sequential(nn.Flatten(), _mlp([c * h * w, *hidden], drop))
            flat = hidden[-1] if hidden else c * h * w
            self.unflatten = nn.Unflatten(1, (c, h, w))
            self.dec_body = _mlp([self.latent, *hidden[::-1]], drop)
            self.dec_out = nn.Linear(hidden[0] if hidden else self.latent, c * h * w)
        self.to_code = nn.Linear(flat, self.latent)
        if self.is_vae:
            self.to_logvar = nn.Linear(flat, self.latent)
        self.code_act = _act(cfg.get("code_activation", "relu"))
        self.code_drop = nn.Dropout(drop) if drop else nn.Identity()
        if channels:
            self.from_code = nn.Sequential(nn.Linear(self.latent, flat), nn.ReLU())

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.cfg["shape"])

    def config(self) -> dict:
        return dict(self.cfg)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc_body(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of x: (B, latent). For a VAE, the posterior mean."""
        return self.code_act(self.to_code(self.features(x)))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE only: (mu, log variance) of q(z|x)."""
        f = self.features(x)
        return self.to_code(f), self.to_logvar(f).clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = self.code_drop(z)
        if self.cfg.get("channels"):
            return torch.sigmoid(self.dec_body(self.unflatten(self.from_code(z))))
        return torch.sigmoid(self.unflatten(self.dec_out(self.dec_body(z))))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder before its sigmoid (for a numerically stable BCE)."""
        z = self.code_drop(z)
        if self.cfg.get("channels"):
            return self.dec_body(self.unflatten(self.from_code(z)))
        return self.unflatten(self.dec_out(self.dec_body(z)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_vae:
            mu, logvar = self.posterior(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.decode(z)
        return self.decode(self.encode(x))


LIMITS = {"side": 1024, "units": 1 << 16, "layers": 16, "channels": 4096}
ACTIVATIONS = ("relu", "sigmoid", "linear", "tanh")


def _sizes(v, what: str, count: tuple[int, int], hi: int) -> list[int]:
    if not isinstance(v, (list, tuple)) or not count[0] <= len(v) <= count[1] or not all(
            isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= hi for x in v):
        raise ValueError(f"{what} must be {count[0]}..{count[1]} integers 1..{hi}, not {v!r}")
    return list(v)


def check_config(cfg) -> dict:
    """A config as stored in a model's JSON, checked and bounded before anything is built (ValueError)."""
    if not isinstance(cfg, dict):
        raise ValueError("the architecture must be an object")
    if cfg.get("kind") not in KINDS:
        raise ValueError(f"unknown autoencoder kind {cfg.get('kind')!r}")
    c, _, _ = _sizes(cfg.get("shape"), "shape (channels, height, width)", (3, 3), LIMITS["side"])
    if c not in (1, 3):
        raise ValueError(f"images have 1 or 3 channels, not {c}")
    _sizes([cfg.get("latent")], "latent", (1, 1), LIMITS["units"])
    _sizes(cfg.get("hidden", []), "hidden", (0, LIMITS["layers"]), LIMITS["units"])
    _sizes(cfg.get("channels", []), "channels", (0, 5), LIMITS["channels"])
    drop = cfg.get("dropout", 0.0)
    if not isinstance(drop, (int, float)) or isinstance(drop, bool) or not 0 <= drop < 1:
        raise ValueError(f"dropout must be a number in [0, 1), not {drop!r}")
    if cfg.get("code_activation", "relu") not in ACTIVATIONS:
        raise ValueError(f"unknown code activation {cfg.get('code_activation')!r}")
    return cfg


def build(cfg: dict) -> Autoencoder:
    return Autoencoder(check_config(cfg))


def weight_penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    """l1 * sum|W| + l2 * sum W^2 over the weight matrices and kernels (not the biases)."""
    total = torch.zeros(())
    for name, p in model.named_parameters():
        if p.dim() > 1:
            if l1:
                total = total + l1 * p.abs().sum()
            if l2:
                total = total + l2 * p.pow(2).sum()
    return total


def reconstruction_error(x: torch.Tensor, logits_or_recon: torch.Tensor, loss: str, logits: bool = False) -> torch.Tensor:
    """Per-image mean reconstruction error, (B,): 'bce' or 'mse' over all pixels."""
    if loss == "bce":
        if logits:
            e = F.binary_cross_entropy_with_logits(logits_or_recon, x, reduction="none")
        else:
            e = F.binary_cross_entropy(logits_or_recon.clamp(1e-7, 1 - 1e-7), x, reduction="none")
    else:
        recon = torch.sigmoid(logits_or_recon) if logits else logits_or_recon
        e = (recon - x) ** 2
    return e.flatten(1).mean(dim=1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per sample, (B,), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def jacobian_frobenius2(model: Autoencoder, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """||d encode(x) / dx||_F^2 per sample, (B,), computed exactly (one backward pass per code unit)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        z = model.encode(x)
        total = torch.zeros(x.shape[0], device=x.device)
        for j in range(z.shape[1]):
            (g,) = torch.autograd.grad(z[:, j].sum(), x, create_graph=create_graph, retain_graph=True)
            total = total + g.flatten(1).pow(2).sum(dim=1)
    return total


def contractive_penalty(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """||J||_F^2 per sample for training. Closed form for the one-layer sigmoid encoder
    (sum_j (h_j (1 - h_j))^2 * sum_i W_ji^2, the classic contractive AE); exact autograd otherwise."""
    one_layer = not model.cfg.get("hidden") and not model.cfg.get("channels")
    if one_layer and model.cfg.get("code_activation") == "sigmoid":
        h = model.encode(x)
        w2 = model.to_code.weight.pow(2).sum(dim=1)  # (latent,)
        return ((h * (1 - h)).pow(2) * w2).sum(dim=1)
    return jacobian_frobenius2(model, x, create_graph=True)

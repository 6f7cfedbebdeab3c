"""A trained family model and what it does: embed, score, reconstruct, sample, interpolate.

Inputs are (N, C, H, W) float tensors on the 0..1 scale in the model's shape (family/data.py
loads folders that way); everything runs in eval mode, in chunks, without gradients (except
the Jacobian statistic).
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import torch

from .. import cache, registry
from ..errors import UserError
from . import models as fm

CHUNK = 1024


@dataclass
class FamilyModel:
    """A loaded family model (an autoencoder of aecli/family/models.py and its metadata)."""

    files: registry.ModelFiles
    model: fm.Autoencoder

    @classmethod
    def load(cls, files: registry.ModelFiles, device: str = "cpu") -> "FamilyModel":
        """The model of `files`, checked against its metadata, in eval mode on `device`."""
        arch = files.meta.get("architecture") or {}
        try:
            fm.check_config(arch)
            _check_anomaly(files.meta.get("anomaly") or {})
        except ValueError as exc:
            raise UserError(f"model '{files.name}': bad metadata: {exc}") from None
        registry.check_size(files, lambda: fm.build(arch))  # before anything is allocated
        tensors = registry.load_tensors(files)
        try:
            model = fm.build(arch)
            model.load_state_dict(tensors)
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise UserError(f"model '{files.name}' does not match its metadata: {str(exc).splitlines()[0]}") from None
        model.eval().to(device)
        return cls(files, model)

    @property
    def name(self) -> str:
        return self.files.name

    @property
    def meta(self) -> dict:
        return self.files.meta

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.model.shape)

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def threshold(self) -> float | None:
        return (self.meta.get("anomaly") or {}).get("threshold")

    @property
    def pool(self) -> int:
        return int((self.meta.get("anomaly") or {}).get("pool", 1))


def load(spec: str | None) -> FamilyModel:
    """A family model by name or path (the --out folder of `aecli train`); None: the bundled default.
    Loaded once per process (aecli/cache.py), on the CPU."""
    return cache.loaded(FamilyModel, registry.resolve(spec, "autoencoder"), "cpu")


def _check_anomaly(a: dict) -> None:
    """The calibration `aecli score` reads: a finite threshold (or none) and a pool of 1..64."""
    t, pool = a.get("threshold"), a.get("pool", 1)
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t)):
        raise ValueError(f"anomaly threshold must be a finite number, not {t!r}")
    if not isinstance(pool, int) or isinstance(pool, bool) or not 1 <= pool <= 64:
        raise ValueError(f"anomaly pool must be an integer 1..64, not {pool!r}")


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode(model: fm.Autoencoder, x: torch.Tensor) -> np.ndarray:
    """Codes (N, latent) float32: the encoder output (the posterior mean for a VAE)."""
    dev = _device(model)
    out = [model.encode(c.to(dev)).cpu() for c in x.split(CHUNK)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.latent), np.float32)


@torch.no_grad()
def reconstruct(model: fm.Autoencoder, x: torch.Tensor) -> torch.Tensor:
    dev = _device(model)
    parts = [model(c.to(dev)).cpu() for c in x.split(CHUNK)]
    return torch.cat(parts) if parts else x.clone()


def scores(model: fm.Autoencoder, x: torch.Tensor, pool: int = 1) -> np.ndarray:
    """Anomaly score per image: the mean squared reconstruction error (0..1 scale), per pixel, or with
    pool > 1 per pool x pool block of the residual's block means (the error of the coarse picture:
    fine texture that no model of the class reproduces matters less than shapes and masses)."""
    if not len(x):
        return np.zeros(0)
    d = reconstruct(model, x) - x
    if pool > 1:
        d = torch.nn.functional.avg_pool2d(d, pool, ceil_mode=True)
    return (d**2).flatten(1).mean(dim=1).numpy().astype(np.float64)


@torch.no_grad()
def decode(model: fm.Autoencoder, z: torch.Tensor) -> torch.Tensor:
    dev = _device(model)
    return torch.cat([model.decode(c.to(dev)).cpu() for c in z.split(CHUNK)])


def sample(model: fm.Autoencoder, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
    """n images decoded from z ~ N(0, temperature^2 I) (VAE only)."""
    if not model.is_vae:
        raise UserError(f"sampling needs a vae model; this one is a {model.kind} autoencoder")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent, generator=g) * temperature
    return decode(model, z)


def interpolate(model: fm.Autoencoder, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Decoded images along the straight line between the codes of a and b (1, C, H, W each), ends included."""
    za, zb = (torch.from_numpy(encode(model, t)) for t in (a, b))
    w = torch.linspace(0, 1, steps).view(-1, 1)
    return decode(model, za * (1 - w) + zb * w)


def code_stats(model: fm.Autoencoder, pixels: torch.Tensor, device=None, images: int = 512) -> dict:
    """Statistics of the code on up to `images` images (uint8 or 0..1 float tensor): mean activation,
    the fraction of (image, unit) activations above 0.05, units never active, and the mean squared
    Frobenius norm of the encoder's Jacobian."""
    x = pixels[:images]
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if not len(x):
        return {}
    z = torch.from_numpy(encode(model, x))
    dev = _device(model)
    jac = torch.cat([fm.jacobian_frobenius2(model, c.to(dev)).detach().cpu() for c in x.split(128)])
    return {
        "images": len(x),
        "mean_activation": round(float(z.abs().mean()), 5),
        "fraction_active": round(float((z > 0.05).float().mean()), 5),
        "dead_units": int(((z > 0.05).sum(dim=0) == 0).sum()),
        "jacobian_frobenius2": round(float(jac.mean()), 5),
    }

"""Training the autoencoder family (dense, conv, VAE, sparse, contractive, denoising).

The images of a folder are held in memory; `val_split` of them (a seeded random choice), or the
images of a separate `val_dir`, are kept apart for validation. A batch is `batch_size` images drawn
at random (an "epoch" is len(train) / batch_size steps), so a resumed run sees the same batches.

Loss of a batch (reconstruction error = BCE or MSE, averaged over pixels as Keras does):
    dense, conv             recon(x, D(E(x)))
    denoising               recon(x, D(E(clip(x + noise * N(0, 1), 0, 1))))
    sparse, L1              recon + l1 * sum_j |z_j|                             (mean over the batch)
    sparse, KL              recon + w * sum_j KL(rho || mean_batch z_j)            (sigmoid code)
    contractive             recon + w * ||dz/dx||_F^2                              (mean over the batch)
    vae                     sum-over-pixels recon + beta * KL(q(z|x) || N(0, I))   (nats per image)
    all                     + weight_l1 * sum|W| + l2 * sum W^2, dropout if asked

Validation reports the same terms on the held-out images (recon and KL separately for the VAE).
The export stores the model, the anomaly threshold (a percentile of the training images' scores)
and code statistics (mean activation, fraction of active units, Jacobian norm).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..family import models as fm
from .loop import TrainConfig

DEFAULTS = {
    "kind": "dense", "latent": 32, "hidden": None, "channels": None, "loss": "bce", "optimizer": "adam",
    "momentum": 0.9, "dropout": 0.0, "weight_l1": 0.0, "l2": 0.0, "sparsity": "l1", "l1": 1e-4,
    "sparsity_target": 0.05, "sparsity_weight": 1e-3, "contractive_weight": 1e-4, "noise": 0.5, "beta": 1.0,
    "image_size": None, "grayscale": False, "shape": None, "val_split": 0.1, "val_dir": None, "percentile": 99.0,
    "score_pool": 2, "epochs": None,
}
ACTIVE = 0.05  # a code unit counts as active on an image when its activation exceeds this
STAT_IMAGES = 512  # held-out images used for the Jacobian statistic


def model_config(o: dict) -> dict:
    cfg = fm.default_config(o["kind"], tuple(o["shape"]), o["latent"])
    if o.get("hidden") is not None:
        cfg["hidden"] = [int(v) for v in o["hidden"]]
    if o.get("channels") is not None and o["kind"] in fm.CONV_KINDS:
        cfg["channels"] = [int(v) for v in o["channels"]]
    cfg["dropout"] = float(o.get("dropout") or 0.0)
    if o["kind"] == "sparse" and o.get("sparsity") == "kl":
        cfg["code_activation"] = "sigmoid"
    return cfg


class FamilySet:
    """Training and validation images as uint8 tensors; batches are random draws."""

    def __init__(self, cfg: TrainConfig, o: dict):
        from ..family.data import load_folder
        from .distributed import is_rank0

        shape = tuple(o["shape"])
        quiet = not is_rank0()  # data-parallel: the other ranks load silently
        full = load_folder(Path(cfg.data), shape, label="load", quiet=quiet)
        self.paths, self.labels = full.paths, full.labels
        if o.get("val_dir"):
            val = load_folder(Path(o["val_dir"]), shape, label="load val", quiet=quiet)
            self.train = torch.from_numpy(full.pixels)
            self.val = torch.from_numpy(val.pixels)
        else:
            n = len(full)
            n_val = int(round(n * float(o["val_split"])))
            if n_val >= n:
                n_val = n - 1
            order = np.random.default_rng(cfg.seed).permutation(n)
            self.val_index, self.train_index = np.sort(order[:n_val]), np.sort(order[n_val:])
            self.train = torch.from_numpy(full.pixels[self.train_index])
            self.val = torch.from_numpy(full.pixels[self.val_index]) if n_val else torch.from_numpy(full.pixels[:0])

    def __len__(self) -> int:
        return len(self.train)

    def batch(self, size: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.train), (size,), generator=gen)
        return self.train[idx].float().div_(255.0)


def _chunks(t: torch.Tensor, size: int = 1024):
    for i in range(0, len(t), size):
        yield t[i : i + size]


class FamilyTask:
    name = "autoencoder"
    grad_clip = None

    def __init__(self, cfg: TrainConfig | None = None):
        self.opts = {**DEFAULTS, **(cfg.extra or {})} if cfg is not None else dict(DEFAULTS)

    def dataset(self, cfg: TrainConfig) -> FamilySet:
        self._data = FamilySet(cfg, self.opts)
        return self._data

    def build(self, cfg: TrainConfig):
        return fm.build(model_config(self.opts))

    def optimizers(self, model, cfg: TrainConfig):
        o = self.opts
        if o["optimizer"] == "sgd":
            return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=o["momentum"]), None
        if o["optimizer"] == "rmsprop":
            return torch.optim.RMSprop(model.parameters(), lr=cfg.lr), None
        return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

    # -- the objective -------------------------------------------------------------------------

    def terms(self, model, x: torch.Tensor, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The loss and its parts for a batch x (0..1); noise for the denoising AE comes from gen."""
        o = self.opts
        kind = o["kind"]
        out: dict[str, torch.Tensor] = {}
        if kind == "vae":
            mu, logvar = model.posterior(x)
            if model.training:
                eps = torch.randn(mu.shape, generator=gen).to(mu.device) if gen is not None else torch.randn_like(mu)
                z = mu + eps * torch.exp(0.5 * logvar)
            else:
                z = mu
            per_pixel = fm.reconstruction_error(x, model.decode_logits(z), o["loss"], logits=True)
            recon = per_pixel * x[0].numel()  # nats (or squared error) per image
            kl = fm.kl_normal(mu, logvar)
            out["recon"], out["kl"] = recon.mean(), kl.mean()
            out["loss"] = (recon + o["beta"] * kl).mean()
            out["elbo"] = -(recon + kl).mean()
        else:
            inp = x
            if kind == "denoising":
                noise = torch.randn(x.shape, generator=gen).to(x.device) if gen is not None else torch.randn_like(x)
                inp = (x + o["noise"] * noise).clamp(0, 1)
            z = model.encode(inp)
            recon = fm.reconstruction_error(x, model.decode_logits(z), o["loss"], logits=True).mean()
            out["recon"] = recon
            loss = recon
            if kind == "sparse":
                if o["sparsity"] == "kl":
                    rho, rho_hat = o["sparsity_target"], z.mean(dim=0).clamp(1e-6, 1 - 1e-6)
                    pen = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
                    loss = loss + o["sparsity_weight"] * pen
                else:
                    pen = z.abs().sum(dim=1).mean()
                    loss = loss + o["l1"] * pen
                out["sparsity"] = pen
            elif kind == "contractive":
                pen = fm.contractive_penalty(model, x).mean()
                loss = loss + o["contractive_weight"] * pen
                out["jacobian"] = pen
            out["loss"] = loss
        if o["weight_l1"] or o["l2"]:
            out["loss"] = out["loss"] + fm.weight_penalty(model, o["weight_l1"], o["l2"]).to(x.device)
        return out

    def loss(self, model, batch, gen):
        t = self.terms(model, batch, gen)
        return t["loss"], {k: float(v.detach()) for k, v in t.items()}

    def validate(self, model, data: FamilySet, device) -> dict:
        """Mean of every loss term over the held-out images (fixed noise for the denoising AE)."""
        if len(data.val) == 0:
            return {}
        gen = torch.Generator().manual_seed(12345)
        sums: dict[str, float] = {}
        n = 0
        for chunk in _chunks(data.val):
            x = chunk.float().div_(255.0).to(device)
            with torch.set_grad_enabled(self.opts["kind"] == "contractive"):
                t = self.terms(model, x, gen)
            for k, v in t.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(x)
            n += len(x)
        return {k: round(v / n, 6) for k, v in sums.items()}

    # -- export --------------------------------------------------------------------------------

    def export(self, model, cfg: TrainConfig, out: Path, record: dict, history: list) -> None:
        from .. import registry
        from ..family import api

        o = self.opts
        data = getattr(self, "_data", None) or FamilySet(cfg, o)
        self._data = data
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        pool = int(o.get("score_pool", 1))
        train_scores = api.scores(model, data.train.float().div(255.0), pool=pool)
        stats = api.code_stats(model, data.val if len(data.val) else data.train, device=device, images=STAT_IMAGES)
        if was_training:
            model.train()
        pct = float(o["percentile"])
        vals = [h["val"] for h in history if "val" in h and h["val"]]
        meta = {
            "name": Path(cfg.out).name,
            "task": "autoencoder",
            "architecture": model.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "objective": {k: o[k] for k in ("loss", "optimizer", "dropout", "weight_l1", "l2")}
            | _kind_options(o),
            "anomaly": {
                "score": "mean squared reconstruction error (0..1 scale) " + (
                    f"of the residual's {pool}x{pool} block means" if pool > 1 else "per pixel"),
                "pool": pool,
                "threshold": float(np.percentile(train_scores, pct)),
                "percentile": pct,
                "train_mean": float(train_scores.mean()),
                "train_std": float(train_scores.std()),
            },
            "labels": sorted(set(data.labels)),
            "training": {**record, "lr": cfg.lr, "epochs": o.get("epochs"), "train_images": len(data.train),
                         "val_images": len(data.val), "val_split": o["val_split"], "val_dir": o["val_dir"]},
            "validation": vals[-1] if vals else None,
            "code_stats": stats,
        }
        tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        registry.save(tensors, meta, Path(out) / f"{meta['name']}.safetensors")


def _kind_options(o: dict) -> dict:
    kind = o["kind"]
    if kind == "sparse":
        keys = ("sparsity", "l1") if o["sparsity"] == "l1" else ("sparsity", "sparsity_target", "sparsity_weight")
    elif kind == "contractive":
        keys = ("contractive_weight",)
    elif kind == "denoising":
        keys = ("noise",)
    elif kind == "vae":
        keys = ("beta",)
    else:
        keys = ()
    return {k: o[k] for k in keys}


def steps_for_epochs(epochs: float, n_train: int, batch_size: int) -> int:
    """Steps of `epochs` passes of ceil(n_train / batch_size) batches each."""
    return max(1, math.ceil(epochs * math.ceil(n_train / batch_size) - 1e-9))

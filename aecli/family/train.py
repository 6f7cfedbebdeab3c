"""Training the autoencoder family (dense, conv, VAE, sparse, contractive, denoising): its options and
its task for the training loop (aecli/train/loop.py).

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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..errors import UserError
from ..train.checkpoint import read_checkpoint
from ..train.config import Asked, TrainConfig, ints, require_positive
from ..train.distributed import is_rank0
from ..train.task import Task
from . import api
from . import models as fm
from .data import infer_shape, list_files, load_folder


@dataclass
class FamilyOptions:
    """The family's recipe; in a checkpoint's "config", its "extra" (train/config.py)."""

    kind: str = "dense"
    latent: int = 32
    hidden: list[int] | None = None
    channels: list[int] | None = None
    loss: str = "bce"
    optimizer: str = "adam"
    momentum: float = 0.9
    dropout: float = 0.0
    weight_l1: float = 0.0
    l2: float = 0.0
    sparsity: str = "l1"
    l1: float = 1e-4
    sparsity_target: float = 0.05
    sparsity_weight: float = 1e-3
    contractive_weight: float = 1e-4
    noise: float = 0.5
    beta: float = 1.0
    image_size: int | None = None
    grayscale: bool = False
    shape: list[int] | None = None
    val_split: float = 0.1
    val_dir: str | None = None
    percentile: float = 99.0
    score_pool: int = 2
    epochs: float | None = None

    def record(self) -> dict:
        return {"extra": asdict(self)}

    @classmethod
    def from_record(cls, record: dict) -> FamilyOptions:
        return cls.of(record.get("extra") or {})

    @classmethod
    def of(cls, options: dict) -> FamilyOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


STAT_IMAGES = 512  # held-out images used for the Jacobian statistic


def model_config(o: FamilyOptions) -> dict:
    cfg = fm.default_config(o.kind, tuple(o.shape), o.latent)
    if o.hidden is not None:
        cfg["hidden"] = [int(v) for v in o.hidden]
    if o.channels is not None and o.kind in fm.CONV_KINDS:
        cfg["channels"] = [int(v) for v in o.channels]
    cfg["dropout"] = float(o.dropout or 0.0)
    if o.kind == "sparse" and o.sparsity == "kl":
        cfg["code_activation"] = "sigmoid"
    return cfg


class FamilySet:
    """Training and validation images as uint8 tensors; batches are random draws."""

    def __init__(self, cfg: TrainConfig, o: FamilyOptions):
        shape = tuple(o.shape)
        quiet = not is_rank0()  # data-parallel: the other ranks load silently
        full = load_folder(Path(cfg.data), shape, label="load", quiet=quiet)
        self.paths, self.labels = full.paths, full.labels
        if o.val_dir:
            val = load_folder(Path(o.val_dir), shape, label="load val", quiet=quiet)
            self.train = torch.from_numpy(full.pixels)
            self.val = torch.from_numpy(val.pixels)
        else:
            n = len(full)
            n_val = int(round(n * float(o.val_split)))
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


class FamilyTask(Task):
    name = "autoencoder"
    Options = FamilyOptions
    DEFAULTS = {"epochs": 20, "batch_size": 256, "patch": 0, "lr": 1e-3}
    LR_DECAY_AT = 1.0  # constant learning rate, as in the seed's Keras example
    grad_clip = None
    crops = False
    compared_with_bundled = False
    USE = "aecli embed --model {m} images/"

    def __init__(self, cfg: TrainConfig | None = None):
        self.o = cfg.options if cfg is not None else FamilyOptions()

    # -- the command line ------------------------------------------------------------------------

    @classmethod
    def recipe(cls, a: Asked) -> tuple[Asked, FamilyOptions]:
        """The family's options checked; the run's length in epochs, an epoch between checkpoints."""
        if a.quality is not None or a.sigma_range is not None or a.blocks is not None:
            raise UserError("--quality, --sigma-range and --blocks are not options of the autoencoder family")
        model = a.model or fm.KINDS[0]
        options, steps, per_epoch = _options(a, model)
        ckpt_every = a.ckpt_every or per_epoch
        val_every = a.val_every or ckpt_every
        log_every = a.log_every or max(1, ckpt_every // 4)
        return replace(a, model=model, steps=steps, ckpt_every=ckpt_every, val_every=val_every, log_every=log_every), options

    @classmethod
    def check(cls, a: Asked, options: FamilyOptions) -> None:
        require_positive(a.steps, a.batch_size)

    @classmethod
    def holdout(cls, a: Asked) -> int:
        return 8 if a.holdout is None else a.holdout  # (unused: val_split or val_dir say)

    def describe(self, cfg: TrainConfig) -> str:
        return f"a {cfg.options.kind} autoencoder"

    # -- training --------------------------------------------------------------------------------

    def dataset(self, cfg: TrainConfig) -> FamilySet:
        self._data = FamilySet(cfg, self.o)
        return self._data

    def build(self, cfg: TrainConfig):
        return fm.build(model_config(self.o))

    def optimizers(self, model, cfg: TrainConfig):
        o = self.o
        if o.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=o.momentum), None
        if o.optimizer == "rmsprop":
            return torch.optim.RMSprop(model.parameters(), lr=cfg.lr), None
        return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

    # -- the objective -------------------------------------------------------------------------

    def terms(self, model, x: torch.Tensor, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The loss and its parts for a batch x (0..1); noise for the denoising AE comes from gen."""
        o = self.o
        kind = o.kind
        out: dict[str, torch.Tensor] = {}
        if kind == "vae":
            mu, logvar = model.posterior(x)
            if model.training:
                eps = torch.randn(mu.shape, generator=gen).to(mu.device) if gen is not None else torch.randn_like(mu)
                z = mu + eps * torch.exp(0.5 * logvar)
            else:
                z = mu
            per_pixel = fm.reconstruction_error(x, model.decode_logits(z), o.loss, logits=True)
            recon = per_pixel * x[0].numel()  # nats (or squared error) per image
            kl = fm.kl_normal(mu, logvar)
            out["recon"], out["kl"] = recon.mean(), kl.mean()
            out["loss"] = (recon + o.beta * kl).mean()
            out["elbo"] = -(recon + kl).mean()
        else:
            inp = x
            if kind == "denoising":
                noise = torch.randn(x.shape, generator=gen).to(x.device) if gen is not None else torch.randn_like(x)
                inp = (x + o.noise * noise).clamp(0, 1)
            z = model.encode(inp)
            recon = fm.reconstruction_error(x, model.decode_logits(z), o.loss, logits=True).mean()
            out["recon"] = recon
            loss = recon
            if kind == "sparse":
                if o.sparsity == "kl":
                    rho, rho_hat = o.sparsity_target, z.mean(dim=0).clamp(1e-6, 1 - 1e-6)
                    pen = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
                    loss = loss + o.sparsity_weight * pen
                else:
                    pen = z.abs().sum(dim=1).mean()
                    loss = loss + o.l1 * pen
                out["sparsity"] = pen
            elif kind == "contractive":
                pen = fm.contractive_penalty(model, x).mean()
                loss = loss + o.contractive_weight * pen
                out["jacobian"] = pen
            out["loss"] = loss
        if o.weight_l1 or o.l2:
            out["loss"] = out["loss"] + fm.weight_penalty(model, o.weight_l1, o.l2).to(x.device)
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
            with torch.set_grad_enabled(self.o.kind == "contractive"):
                t = self.terms(model, x, gen)
            for k, v in t.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(x)
            n += len(x)
        return {k: round(v / n, 6) for k, v in sums.items()}

    # -- export --------------------------------------------------------------------------------

    def export(self, model, cfg: TrainConfig, out: Path, record: dict, history: list) -> None:
        o = self.o
        data = getattr(self, "_data", None) or FamilySet(cfg, o)
        self._data = data
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        pool = int(o.score_pool)
        train_scores = api.scores(model, data.train.float().div(255.0), pool=pool)
        stats = api.code_stats(model, data.val if len(data.val) else data.train, device=device, images=STAT_IMAGES)
        if was_training:
            model.train()
        pct = float(o.percentile)
        vals = [h["val"] for h in history if "val" in h and h["val"]]
        meta = {
            "name": Path(cfg.out).name,
            "task": "autoencoder",
            "architecture": model.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "objective": {k: getattr(o, k) for k in ("loss", "optimizer", "dropout", "weight_l1", "l2")}
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
            "training": {**record, "lr": cfg.lr, "epochs": o.epochs, "train_images": len(data.train),
                         "val_images": len(data.val), "val_split": o.val_split, "val_dir": o.val_dir},
            "validation": vals[-1] if vals else None,
            "code_stats": stats,
        }
        tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        registry.save(tensors, meta, Path(out) / f"{meta['name']}.safetensors")


def _kind_options(o: FamilyOptions) -> dict:
    kind = o.kind
    if kind == "sparse":
        keys = ("sparsity", "l1") if o.sparsity == "l1" else ("sparsity", "sparsity_target", "sparsity_weight")
    elif kind == "contractive":
        keys = ("contractive_weight",)
    elif kind == "denoising":
        keys = ("noise",)
    elif kind == "vae":
        keys = ("beta",)
    else:
        keys = ()
    return {k: getattr(o, k) for k in keys}


def steps_for_epochs(epochs: float, n_train: int, batch_size: int) -> int:
    """Steps of `epochs` passes of ceil(n_train / batch_size) batches each."""
    return max(1, math.ceil(epochs * math.ceil(n_train / batch_size) - 1e-9))


def _options(a: Asked, kind: str) -> tuple[FamilyOptions, int, int]:
    """The recipe (a resumed run's from its checkpoint: only the length may change), the steps, and
    the steps of an epoch."""
    o = _checked(dict(a.family or {}), kind, a.channels)
    files = list_files(a.data)
    if not files:
        raise UserError(f"no images found under {a.data}")
    ckpt = a.out / "checkpoint.pt"
    if a.resume and ckpt.exists():
        saved = read_checkpoint(ckpt)["config"].get("extra")
        if not isinstance(saved, dict) or "shape" not in saved:
            raise UserError(f"cannot resume from {ckpt}: it is not a checkpoint of the autoencoder family")
        o = {**saved, **{k: v for k, v in o.items() if k == "epochs"}}
    else:
        o = {**asdict(FamilyOptions()), **o, "kind": kind}
        o["shape"] = list(infer_shape(files[0], o.get("image_size"), o.get("grayscale", False)))
        if max(o["shape"][1:]) > fm.LIMITS["side"]:
            raise UserError(f"{files[0]} is {o['shape'][2]}x{o['shape'][1]}: the autoencoder family takes images of at "
                            f"most {fm.LIMITS['side']} pixels a side; give --image-size")
    n_val = 0 if o.get("val_dir") else int(round(len(files) * o["val_split"]))
    per_epoch = max(1, -(-(len(files) - n_val) // a.batch_size))
    steps = a.steps
    if steps is None:
        steps = steps_for_epochs(o.get("epochs") or FamilyTask.DEFAULTS["epochs"], len(files) - n_val, a.batch_size)
    o["epochs"] = o.get("epochs") or round(steps / per_epoch, 3)
    return FamilyOptions.of(o), steps, per_epoch


def _checked(o: dict, kind: str, channels: str | None) -> dict:
    """The options given (`o`, --channels), checked; --channels and --hidden as lists of widths."""
    if o.get("loss", "bce") not in ("bce", "mse"):
        raise UserError("--loss must be bce or mse")
    if o.get("optimizer", "adam") not in ("adam", "sgd", "rmsprop"):
        raise UserError("--optimizer must be adam, sgd or rmsprop")
    if o.get("sparsity", "l1") not in ("l1", "kl"):
        raise UserError("--sparsity must be l1 or kl")
    if not 0 <= o.get("dropout", 0.0) < 1:
        raise UserError("--dropout must be in [0, 1)")
    if not 0 <= o.get("val_split", 0.1) < 1:
        raise UserError("--val-split must be in [0, 1)")
    if not 0 < o.get("sparsity_target", 0.05) < 1:
        raise UserError("--sparsity-target must be in (0, 1)")
    for k in ("l1", "weight_l1", "l2", "contractive_weight", "sparsity_weight", "noise", "beta"):
        if o.get(k, 0) < 0:
            raise UserError(f"--{k.replace('_', '-')} must not be negative")
    if o.get("latent", 1) < 1 or (o.get("image_size") is not None and not 4 <= o["image_size"] <= 256):
        raise UserError("--latent-dim must be positive and --image-size 4..256")
    if not 1 <= o.get("score_pool", 1) <= 64:
        raise UserError("--score-pool must be 1..64")
    if o.get("epochs") is not None and o["epochs"] <= 0:
        raise UserError("--epochs must be positive")
    if o.get("val_dir") is not None and not Path(o["val_dir"]).exists():
        raise UserError(f"validation data not found: {o['val_dir']}")
    if channels is not None:
        if kind not in fm.CONV_KINDS:
            raise UserError("--channels is for --model conv or denoising (the conv widths, such as 32,64)")
        o["channels"] = ints(channels, "--channels must be integers such as 32,64")
        if not 1 <= len(o["channels"]) <= 5 or min(o["channels"]) < 1:
            raise UserError("--channels must give 1 to 5 positive widths, such as 32,64")
    if o.get("hidden") is not None:
        text = o["hidden"].strip()
        o["hidden"] = [] if text in ("", "none", "0") else ints(text, "--hidden must be integers such as 256,128")
        if any(v < 1 for v in o["hidden"]):
            raise UserError("--hidden sizes must be positive")
    return o

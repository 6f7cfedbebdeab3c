"""A run's recipe and schedule (TrainConfig), what `aecli train` was asked (Asked), and what a resumed
run may change of its checkpoint's recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import UserError


@dataclass
class TrainConfig:
    """What is the same for every task: data, output, length, batches, learning rate, seed, where the
    run goes and how often it logs, validates and checkpoints. `options` is the task's own recipe, a
    dataclass of its family (CodecOptions in codec/train.py, DenoiseOptions, FamilyOptions)."""

    data: str
    out: str
    task: str = "codec"
    model: str = "hyperprior"
    steps: int = 100_000
    batch_size: int = 8
    patch: int = 128
    lr: float = 1e-4
    lr_decay_at: float = 0.9  # fraction of steps after which lr is divided by 10
    seed: int = 0
    device: str = "auto"
    holdout: int = 8
    log_every: int = 50
    ckpt_every: int = 500
    val_every: int = 2000
    threads: int = 0
    time_limit: float = 0.0  # seconds of training for this process, then checkpoint and stop (0: none)
    init: str | None = None  # start from this model's weights (aecli/train/init.py); a fresh run only
    options: Any = None

    def record(self) -> dict:
        """The checkpoint's "config" (see LEGACY)."""
        values = {**{k: getattr(self, k) for k in OWN}, **LEGACY, **self.options.record()}
        return {**{k: values[k] for k in ORDER if k in values}, **values}

    @classmethod
    def from_record(cls, record: dict, options: type) -> TrainConfig:
        """A checkpoint's "config" as a TrainConfig, its task's part read by the class `options`."""
        return cls(**{k: v for k, v in record.items() if k in OWN}, options=options.from_record(record))


OWN = tuple(f.name for f in fields(TrainConfig) if f.name != "options")
# A checkpoint's "config" is flat, as the first versions wrote it with one TrainConfig for every task:
# the fields above, the codec's n, m, quality and gain_lr_scale (with these values in the other tasks'),
# and `extra`, the rest of the task's recipe, in the order ORDER. An options class writes its part
# (record) and reads it back (from_record).
LEGACY = {"n": 64, "m": 128, "quality": None, "gain_lr_scale": 10.0, "extra": {}}
ORDER = ("data", "out", "task", "model", "n", "m", "quality", "steps", "batch_size", "patch", "lr", "lr_decay_at",
         "gain_lr_scale", "seed", "device", "holdout", "log_every", "ckpt_every", "val_every", "threads", "time_limit",
         "extra", "init")
RECORD_KEYS = frozenset(OWN) | set(LEGACY)


@dataclass
class Asked:
    """The options of `aecli train` as given (None: not given); the task fills in its defaults."""

    data: Path
    out: Path
    task: str | None = None
    model: str | None = None
    quality: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    patch: int | None = None
    lr: float | None = None
    channels: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    holdout: int | None = None
    ckpt_every: int | None = None
    val_every: int | None = None
    log_every: int | None = None
    resume: bool = False
    sigma_range: str | None = None
    blocks: int | None = None
    family: dict | None = None  # the autoencoder family's own options (family/train.py)
    time_limit: float | None = None
    real_noise: bool = False
    init: str | None = None
    install: bool = False


def ints(text: str, what: str) -> list[int]:
    """The comma-separated integers of an option (`what`: the UserError's message)."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(what) from None


def require_positive(*values) -> None:
    if min(values) < 1:
        raise UserError("--steps, --batch-size, --patch and --channels must be positive")


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of a step: cfg.lr, divided by 10 from lr_decay_at of the steps on."""
    return cfg.lr * (0.1 if step >= cfg.lr_decay_at * cfg.steps else 1.0)


# what a resumed run may change: this process's own settings always; the schedule and the recipe
# only where asked for explicitly (`changes`), else they come from the checkpoint
ALWAYS_NEW = ("device", "threads", "time_limit", "data", "out")
SCHEDULE = ("steps", "log_every", "ckpt_every", "val_every")
RECIPE_CHANGES = ("batch_size", "patch", "lr")


def resumed_config(cfg: TrainConfig, state: dict, changes: tuple[str, ...], options: type, log) -> TrainConfig:
    """The checkpoint's recipe and schedule (its task's part read by `options`), with this process's
    settings and the explicitly asked `changes`; each change is logged (with what it does to the
    learning rate at the resumed step)."""
    unknown = set(changes) - set(SCHEDULE + RECIPE_CHANGES)
    if unknown:
        raise ValueError(f"a resumed run cannot change {sorted(unknown)}")
    saved = state["config"]
    keep = {k: getattr(cfg, k) for k in ALWAYS_NEW + tuple(changes)}
    try:
        new, old = TrainConfig.from_record({**saved, **keep}, options), TrainConfig.from_record(saved, options)
    except TypeError as exc:
        raise UserError(f"cannot resume: the checkpoint's recipe is incomplete ({exc})") from None
    step = state["step"]
    for group, what in ((SCHEDULE, "schedule"), (RECIPE_CHANGES, "recipe")):
        changed = [f"{k} {saved.get(k)} -> {keep[k]}" for k in changes if k in group and saved.get(k) != keep[k]]
        if changed:
            log(f"{what} change at step {step}: {', '.join(changed)}")
    if lr_at(old, step) != lr_at(new, step):
        until = f" until step {math.ceil(new.lr_decay_at * new.steps)}" if lr_at(new, step) == new.lr else ""
        log(f"the learning rate at step {step} changes from {lr_at(old, step):g} to {lr_at(new, step):g}{until}")
    return new

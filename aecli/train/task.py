"""What a task is: a class that the training engine is handed (codec/train.py's CodecTask,
denoise/train.py's DenoiseTask, family/train.py's FamilyTask).

For `aecli train` (run.py), its class methods and constants:
    DEFAULTS, FINETUNE        the shared options' defaults from scratch and with --init (steps, batch
                              size, crop, learning rate); LR_DECAY_AT, see config.lr_at
    Options                   the task's own recipe: a dataclass with record() and from_record(), its
                              part of a checkpoint's "config" (config.py)
    recipe(asked)             checks the task's own options: (asked with the task's defaults, Options)
    check(asked, options)     the sizes its network can take; holdout(asked): images kept apart for
                              validation; notes(cfg): lines to log before training

For the loop (loop.py), an instance made from the run's TrainConfig:
    dataset(cfg)              the data: batch(n, generator) (or batch_u8, 8-bit crops), len(), skipped
    build(cfg)                the model
    optimizers(model, cfg)    (optimizer, auxiliary optimizer or None; the loop steps aux_loss() with it)
    loss(model, batch, gen)   (loss, stats), every random number drawn from `gen` or torch's generator
    validate(model, data, device)    figures on the held-out data
    export(model, cfg, out, record, history)    the inference weights and their JSON
    grad_clip, validation_method

For what a user reads first and last (report.py): describe(cfg), figures(val), far_from(...), USE.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .config import Asked, TrainConfig, require_positive
from .data import list_images


class Task:
    name = ""
    DEFAULTS: dict = {}
    FINETUNE: dict = {}
    LR_DECAY_AT = 0.9
    Options: type
    grad_clip: float | None = 1.0
    validation_method: str | None = None  # see checkpoint.validation_entry
    crops = True  # trained on random crops of images (the autoencoder family: on whole small images)
    compared_with_bundled = True  # warned when far from the bundled model of the task (report.py)
    USE = "aecli --model {m}"  # the command that uses the trained model

    def __init__(self, cfg: TrainConfig | None = None):
        pass

    # -- the command line ------------------------------------------------------------------------

    @classmethod
    def recipe(cls, a: Asked) -> tuple[Asked, Any]:
        raise NotImplementedError

    @classmethod
    def check(cls, a: Asked, options) -> None:
        require_positive(a.steps, a.batch_size, a.patch)

    @classmethod
    def holdout(cls, a: Asked) -> int:
        """One image in 8 for validation, at least 1, at most 8, unless --holdout says."""
        found = len(list_images(a.data))
        if not found:
            raise UserError(f"no images found under {a.data}")
        if a.holdout is None:
            return min(8, max(1, found // 8)) if found > 1 else 0
        return a.holdout

    @classmethod
    def notes(cls, cfg: TrainConfig) -> list[str]:
        return []

    # -- what the first and last lines say --------------------------------------------------------

    def describe(self, cfg: TrainConfig) -> str:
        return f"a {cfg.model} model"

    def figures(self, val) -> str | None:
        """The validation figures worth a line, None for the plain listing (report.py)."""
        return None

    def far_from(self, val, bundled: dict, name: str) -> str | None:
        """How the validation compares with the bundled model `name` (its JSON `bundled`) when it is far
        worse, else None."""
        return None

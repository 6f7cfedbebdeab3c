"""What a user sees first and last of a run: what is trained on what; where the model is, its
validation figures, the command that uses it; warnings when it is far from useful."""

from __future__ import annotations

import json

import torch

from .. import registry
from ..devices import hardware
from ..errors import UserError
from .config import TrainConfig


def held_out(data) -> str:
    held = getattr(data, "val_images", None)
    if held is None:
        held = getattr(data, "val", None)  # (the autoencoder family's: a tensor)
    n = 0 if held is None else len(held)
    return f"{n} held-out image{'s' * (n != 1)}" if n else "training images (none held out)"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def start_line(cfg: TrainConfig, task, data, device: torch.device, budget: str = "", resumed_at: int | None = None) -> str:
    """One line: what is trained on what, from which weights, where, for how long, into which folder."""
    what = "images" if task.crops else "examples"
    source = f"from '{cfg.init}'" if cfg.init else "from scratch"
    if resumed_at is not None:
        source = f"resumed at step {resumed_at:,}"
    crops = f" of {cfg.batch_size} crops {cfg.patch}x{cfg.patch}" if task.crops else f" of {cfg.batch_size}"
    length = f"{cfg.steps:,} steps{crops}"
    if cfg.time_limit:
        length += f" or {_minutes(cfg.time_limit)}, whichever comes first"
    threads = torch.get_num_threads()
    where = f"cpu, {threads} thread{'s' * (threads != 1)}" if device.type == "cpu" else hardware(device)
    return (f"training {task.describe(cfg)} {source} on {len(data)} {what} of {cfg.data} ({held_out(data)} for validation); "
            f"{where}; {length}{f' ({budget})' if budget else ''}; lr {cfg.lr:g}, seed {cfg.seed}; output {cfg.out}")


def _as_path(out: str) -> str:
    """OUT as --model takes a path (a bare name would be looked up among installed models)."""
    return out if "/" in out or out.startswith(".") else f"./{out}"


def _figures(task, val) -> str:
    """The task's figures worth a line (task.figures), else every number of a dict."""
    if not val:
        return "no validation figures"
    text = task.figures(val)
    if text is not None:
        return text
    if isinstance(val, dict):
        return ", ".join(f"{k} {v:.4g}" for k, v in val.items() if isinstance(v, (int, float)))
    return json.dumps(val)


def end_line(cfg: TrainConfig, task, step: int, seconds: float, val, data) -> str:
    """One line: where the model is, its validation figures, the command that uses it."""
    m = _as_path(cfg.out)
    return (f"model saved in {cfg.out} (step {step:,}, {_minutes(seconds)} of training); validation on {held_out(data)}: "
            f"{_figures(task, val)}; use it: {task.USE.format(m=m)}; install it under its name: aecli models install {m}")


def usefulness_warnings(cfg: TrainConfig, task, step: int, val) -> list[str]:
    """Warnings when the model is far from useful: trained from scratch for a small fraction of the
    steps of the bundled model of its task, or validating far worse than it does (task.far_from)."""
    if not task.compared_with_bundled or cfg.init:
        return []
    name = registry.DEFAULTS[cfg.task]
    try:
        bundled = registry.resolve(name, cfg.task).meta
    except UserError:
        return []
    out = []
    advice = (f"to adapt the bundled model to your images in minutes instead, start from it: "
              f"aecli train {cfg.data} --task {cfg.task} --init {name} --out {_as_path(cfg.out)}-{name}")
    full = (bundled.get("training") or {}).get("steps") or 0
    if full and step < full / 10:
        out.append(f"this model trained {step:,} steps from scratch, {100 * step / full:.1g}% of the bundled "
                   f"'{name}' ({full:,} steps): expect far worse results than '{name}'; {advice}")
    far = task.far_from(val, bundled, name)
    if far:
        out.append(f"validation is far from '{name}': {far}" + ("" if out else f"; {advice}"))
    return out

"""A run's checkpoint, OUT/checkpoint.pt: what it holds, writing it atomically, reading it back.

A dict, written by torch.save and only ever read with weights_only=True:
    config                  the recipe (TrainConfig.record(): flat, see config.py)
    model, opt, aux_opt     the weights and the optimizers' states
    gen, torch_rng          the random generators' states: a resumed run draws what an uninterrupted one does
    step, seconds           how far the run is, and its seconds of training
    history                 the stats of each log line and each validation (validation_entry)
    segments                one entry per process that trained the run: its steps, hardware, seconds,
                            batch size, crop and learning rate
    extensions              changes made outside the loop by scripts (scripts/extend_qualities.py), when any
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import replace_atomically
from ..devices import hardware
from ..errors import UserError
from .config import RECORD_KEYS, TrainConfig
from .init import source_training

KEYS = ("config", "model", "opt", "gen", "torch_rng", "step", "seconds", "history")  # (the others may be missing)


def atomic_save(obj, path: Path) -> None:
    """torch.save through a unique temporary file, fsync'ed before the rename (atomic.py)."""
    replace_atomically(Path(path), lambda f: torch.save(obj, f), 0o644)


def read_checkpoint(path: Path) -> dict:
    """A training checkpoint, or a UserError saying it cannot be resumed (never torch's advice to load
    it unsafely: a checkpoint is only ever read with weights_only=True)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint to resume at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated zip, a pickle of other objects, ...: torch raises many kinds
        raise UserError(f"cannot resume from {path}: it is not a readable aecli checkpoint (damaged, truncated "
                        f"or written by other software: {type(exc).__name__})") from None
    if not (isinstance(state, dict) and all(k in state for k in KEYS) and isinstance(state["config"], dict)
            and {"data", "out"} <= set(state["config"]) <= RECORD_KEYS):
        raise UserError(f"cannot resume from {path}: it is not an aecli training checkpoint (fields missing)")
    return state


@dataclass
class Run:
    """How far a run is, as its checkpoint keeps it (steps, seconds, history, segments, extensions)."""

    step: int = 0
    seconds: float = 0.0
    history: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    extensions: list = field(default_factory=list)
    began: float = 0.0  # `seconds` when this process's segment began (not saved)

    @classmethod
    def from_state(cls, state: dict) -> Run:
        return cls(state["step"], state["seconds"], state["history"], state.get("segments", []),
                   state.get("extensions", []))

    def begin_segment(self, cfg: TrainConfig, hardware: str, **more) -> None:
        """This process's segment: from this step, on `hardware` (`more`: data-parallel processes and backend)."""
        self.began = self.seconds
        self.segments.append({"from_step": self.step, "to_step": self.step, "hardware": hardware, "seconds": 0.0,
                              "batch_size": cfg.batch_size, "patch": cfg.patch, "lr": cfg.lr, **more})


def save(path: Path, cfg: TrainConfig, run: Run, model, opt, aux_opt, gen: torch.Generator) -> None:
    segment = run.segments[-1]
    segment["to_step"], segment["seconds"] = run.step, round(run.seconds - run.began, 1)
    atomic_save(
        {
            "config": cfg.record(),
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "aux_opt": aux_opt.state_dict() if aux_opt is not None else {},
            "gen": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": run.step,
            "seconds": run.seconds,
            "history": run.history,
            "segments": run.segments,
            **({"extensions": run.extensions} if run.extensions else {}),
        },
        path,
    )


def restore(state: dict, model, opt, aux_opt, gen: torch.Generator, log) -> None:
    """Load the checkpoint's weights, optimizer and random states (UserError if they do not fit)."""
    try:
        model.load_state_dict(state["model"])
        try:
            opt.load_state_dict(state["opt"])
        except ValueError:  # the recipe's parameter groups changed since this checkpoint
            log("optimizer parameter groups changed since the checkpoint: optimizer state reset")
        if aux_opt is not None and state.get("aux_opt"):
            aux_opt.load_state_dict(state["aux_opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise UserError(f"cannot resume: the checkpoint does not fit its own recipe ({str(exc).splitlines()[0]})") from None


def validation_entry(task, step: int, val) -> dict:
    """A history entry for a validation. It names the task's validation method where the task has one
    (`task.validation_method`), so that figures measured by an older method are redone, not exported."""
    method = getattr(task, "validation_method", None)
    return {"step": step, "val": val, **({"method": method} if method else {})}


def validations(task, history: list) -> list[dict]:
    """The history's validations made by the task's current method, oldest first."""
    method = getattr(task, "validation_method", None)
    return [h for h in history if "val" in h and h.get("method") == method]


def training_record(cfg: TrainConfig, data, step: int, seconds: float, segments: list, extensions: list,
                    device: torch.device) -> dict:
    """The "training" block of an exported model's JSON: steps, time, hardware and segments that
    trained, data, recipe, and the changes made outside the loop (`extensions`)."""
    trained = [s for s in segments if s["to_step"] > s["from_step"]]
    return {
        "steps": step,
        "seconds": round(seconds, 1),
        "hardware": ", ".join(sorted({s["hardware"] for s in trained})) or hardware(device),
        "segments": trained,
        "data": str(cfg.data),
        "images": len(data),
        **({"unreadable_files_skipped": len(data.skipped)} if getattr(data, "skipped", None) else {}),
        "batch_size": cfg.batch_size,
        "patch": cfg.patch,
        "seed": cfg.seed,
        **({"init": cfg.init} if cfg.init else {}),  # the weights it started from (aecli/train/init.py)
        **({"init_training": _init_training(cfg.init, cfg.task)} if cfg.init else {}),
        "torch": torch.__version__,
        **({"extensions": [{k: v for k, v in e.items() if k != "history"} for e in extensions]} if extensions else {}),
    }


def _init_training(spec: str, task: str) -> dict:
    """How the --init source was trained (its own "training" block), so that a model's JSON keeps its
    whole lineage; {} when the source is gone or says nothing."""
    try:
        return source_training(spec, task)
    except Exception:  # noqa: BLE001 - the record is informative; the run already loaded the source
        return {}

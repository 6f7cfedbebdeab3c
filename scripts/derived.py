"""Runs derived from a trained codec checkpoint by a script (scripts/extend_qualities.py,
scripts/fit_context.py): their common options, log, and the checkpoint and weights they write."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from aecli.train.checkpoint import atomic_save, training_record, validation_entry
from aecli.train.config import TrainConfig

# The training images when --data is not given: CBSD432 in the data folder beside the checkout
# (../shared, not part of the repository; tools/paths.py), written relative to the repository root,
# where the scripts run (python -m scripts.NAME), since the run records the path as given.
DEFAULT_DATA = "../shared/data/CBSD432"


def parser(doc: str, steps: int, lr: float, data: str = DEFAULT_DATA) -> argparse.ArgumentParser:
    """The options every such script takes (add its own, then parse); `data`: the default of --data."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True, help="folder of the new run (its name is the model's name)")
    ap.add_argument("--data", default=data, help=f"training images (default: {data})")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    return ap


def train_only(model, params: list, lr: float, seed: int) -> tuple[torch.optim.Adam, torch.Generator]:
    """Freeze `model` except `params`; seed torch; return Adam on `params` and a seeded generator
    (the model is left in training mode; `unfreeze` gives every weight its gradient back)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    torch.manual_seed(seed)
    model.train()
    return torch.optim.Adam(params, lr=lr), torch.Generator().manual_seed(seed)


def unfreeze(model) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def logger(path: Path):
    """A function that prints a line to stderr and appends it to `path`."""
    f = Path(path).open("a")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
        f.write(msg + "\n")
        f.flush()

    return log


def finish(task, model, state: dict, config: dict, cfg: TrainConfig, data, out: Path, extension: dict,
           opt_state: dict, log, aux_opt_state: dict | None = None) -> None:
    """Validate `model` on the held-out images, then write the run's checkpoint (the old one's
    history and segments, `extension` appended, `config` as its recipe) and its exported weights
    (recorded with `cfg`)."""
    model.eval()
    val = task.validate(model, data, torch.device("cpu"))
    log(f"validation: {json.dumps(val)}")
    new_state = {**state, "config": config, "model": model.state_dict(), "opt": opt_state,
                 "extensions": [*state.get("extensions", []), extension],
                 "history": [*state["history"], validation_entry(task, state["step"], val)]}
    if aux_opt_state is not None:
        new_state["aux_opt"] = aux_opt_state
    atomic_save(new_state, Path(out) / "checkpoint.pt")
    record = training_record(cfg, data, state["step"], state["seconds"], state.get("segments", []),
                             new_state["extensions"], torch.device("cpu"))
    task.export(model, cfg, out, record, new_state["history"])
    log(f"saved {out}")

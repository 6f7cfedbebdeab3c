"""Copy a training checkpoint without the optimizers' moments (about a third of its size).

    python -m scripts.slim_checkpoint checkpoints/hp/checkpoint.pt .gpu/hp.pt

For moving checkpoints to and from a lent GPU machine, whose transfers are limited (64 MiB each
way). Everything else stays: model, recipe, step, random states, history, segments. A run resumed
from a slim checkpoint restarts Adam's moments (its first steps then move like the first steps of
a fresh Adam); the bundled codec's GPU segments were resumed this way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from aecli.train.checkpoint import atomic_save


def slim(src: str, dst: str) -> None:
    state = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("opt", "aux_opt"):
        if state.get(key):
            state[key] = {**state[key], "state": {}}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    atomic_save(state, Path(dst))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    slim(sys.argv[1], sys.argv[2])
    print(f"{sys.argv[1]} ({Path(sys.argv[1]).stat().st_size} bytes) -> {sys.argv[2]} ({Path(sys.argv[2]).stat().st_size} bytes)",
          file=sys.stderr)

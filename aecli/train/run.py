"""`aecli train`: check the arguments, then hand over to the training loop."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError

CODEC_KINDS = ("hyperprior", "factorized")


def main(*, data: Path, out: Path, task: str, model: str, quality, steps: int, batch_size: int, patch: int,
         lr: float, channels: str, seed: int, device: str, threads: int, holdout: int, ckpt_every: int,
         val_every: int, log_every: int, resume: bool) -> int:
    if not data.exists():
        raise UserError(f"training data not found: {data}")
    if task == "codec":
        if model not in CODEC_KINDS:
            raise UserError(f"unknown codec model '{model}' (choose {', '.join(CODEC_KINDS)})")
        from ..codec.model import LAMBDAS

        if quality is not None and not 1 <= quality <= len(LAMBDAS):
            raise UserError(f"--quality must be 1..{len(LAMBDAS)}")
    try:
        n, m = (int(v) for v in channels.split(","))
    except ValueError:
        raise UserError("--channels must be two integers N,M such as 64,128") from None
    if min(steps, batch_size, patch, n, m) < 1:
        raise UserError("--steps, --batch-size, --patch and --channels must be positive")
    if patch % 64 and task == "codec" and model == "hyperprior":
        raise UserError("--patch must be a multiple of 64 for the hyperprior codec")
    ckpt = out / "checkpoint.pt"
    if not resume and ckpt.exists():
        raise UserError(f"{ckpt} exists: add --resume to continue it, or choose another --out")

    from .data import list_images
    from .loop import TrainConfig, train

    if not list_images(data):
        raise UserError(f"no images found under {data}")
    cfg = TrainConfig(data=str(data), out=str(out), task=task, model=model, n=n, m=m, quality=quality, steps=steps,
                      batch_size=batch_size, patch=patch, lr=lr, seed=seed, device=device, holdout=holdout,
                      log_every=log_every, ckpt_every=ckpt_every, val_every=val_every, threads=threads)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as logf:
        def log(msg: str) -> None:
            print(msg, file=logf, flush=True)
            if not sys.stderr.isatty():
                print(msg, file=sys.stderr, flush=True)

        try:
            train(cfg, resume=resume, log=log)
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
    return 0

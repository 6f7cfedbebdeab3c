"""`aecli train`: check the arguments, then hand over to the training loop."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError

CODEC_KINDS = ("hyperprior", "factorized")
DENOISE_KINDS = ("unet",)
DEFAULT_MODEL = {"codec": "hyperprior", "denoise": "unet"}
DEFAULT_CHANNELS = {"codec": "64,128", "denoise": "32,64,128"}
DEFAULT_SIGMA_RANGE = "0,50"


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(what) from None


def _sigma_range(text: str) -> list[float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError("--sigma-range must be two numbers LO,HI such as 0,50") from None
    if not 0 <= lo <= hi <= 255:
        raise UserError("--sigma-range must satisfy 0 <= LO <= HI <= 255 (0-255 scale)")
    return [lo, hi]


def main(*, data: Path, out: Path, task: str, model: str | None, quality, steps: int, batch_size: int, patch: int,
         lr: float, channels: str | None, seed: int, device: str, threads: int, holdout: int, ckpt_every: int,
         val_every: int, log_every: int, resume: bool, sigma_range: str | None = None) -> int:
    if not data.exists():
        raise UserError(f"training data not found: {data}")
    model = model or DEFAULT_MODEL[task]
    channels = channels or DEFAULT_CHANNELS[task]
    extra: dict = {}
    n, m = DEFAULT_CHANNELS["codec"].split(",")
    n, m = int(n), int(m)
    if task == "codec":
        if model not in CODEC_KINDS:
            raise UserError(f"unknown codec model '{model}' (choose {', '.join(CODEC_KINDS)})")
        if sigma_range is not None:
            raise UserError("--sigma-range is for --task denoise")
        from ..codec.model import LAMBDAS

        if quality is not None and not 1 <= quality <= len(LAMBDAS):
            raise UserError(f"--quality must be 1..{len(LAMBDAS)}")
        vals = _ints(channels, "--channels must be two integers N,M such as 64,128")
        if len(vals) != 2:
            raise UserError("--channels must be two integers N,M such as 64,128")
        n, m = vals
        widths = vals
    else:  # denoise
        if model not in DENOISE_KINDS:
            raise UserError(f"unknown denoise model '{model}' (choose {', '.join(DENOISE_KINDS)})")
        if quality is not None:
            raise UserError("--quality is for --task codec")
        widths = _ints(channels, "--channels must be integers, the U-Net widths per scale, such as 32,64,128")
        if not 1 <= len(widths) <= 6:
            raise UserError("--channels must give 1 to 6 U-Net widths, such as 32,64,128")
        extra = {"widths": widths, "sigma_range": _sigma_range(sigma_range or DEFAULT_SIGMA_RANGE)}
    if min(steps, batch_size, patch, *widths) < 1:
        raise UserError("--steps, --batch-size, --patch and --channels must be positive")
    if patch % 64 and task == "codec" and model == "hyperprior":
        raise UserError("--patch must be a multiple of 64 for the hyperprior codec")
    if task == "denoise" and patch % 2 ** (len(widths) - 1):
        raise UserError(f"--patch must be a multiple of {2 ** (len(widths) - 1)} for a {len(widths)}-scale U-Net")
    ckpt = out / "checkpoint.pt"
    if not resume and ckpt.exists():
        raise UserError(f"{ckpt} exists: add --resume to continue it, or choose another --out")

    from .data import list_images
    from .loop import TrainConfig, train

    if task == "denoise":  # the whole recipe goes into the checkpoint, so that a resume keeps it
        from .denoise_task import DEFAULTS

        extra = {**DEFAULTS, **extra}
    if not list_images(data):
        raise UserError(f"no images found under {data}")
    cfg = TrainConfig(data=str(data), out=str(out), task=task, model=model, n=n, m=m, quality=quality, steps=steps,
                      batch_size=batch_size, patch=patch, lr=lr, seed=seed, device=device, holdout=holdout,
                      log_every=log_every, ckpt_every=ckpt_every, val_every=val_every, threads=threads, extra=extra)
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

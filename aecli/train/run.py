"""`aecli train`: pick the task, let it check its options, then hand the run to the training loop.

Each task checks its own options and sets its defaults (codec/train.py, denoise/train.py,
family/train.py); what is left here is the same for every task: the length of the run (the CPU
default), the intervals, the output folder, train.log, the exit status and --install."""

from __future__ import annotations

import sys
from dataclasses import replace

from ..errors import UserError
from .config import Asked, TrainConfig

# the --model kinds of each task (the first is the default); here, to be checked without importing torch
KINDS = {"codec": ("hyperprior", "checkerboard", "factorized"), "denoise": ("unet",),
         "autoencoder": ("dense", "conv", "vae", "sparse", "contractive", "denoising")}
# the default length of a run on a CPU: (steps, seconds), whichever comes first; the GPU default is
# the task's steps (its DEFAULTS, or FINETUNE with --init) with no time limit
CPU_BUDGET = {"scratch": (5000, 3600), "finetune": (400, 1800)}


def task_of(task: str | None, model: str | None) -> str:
    """The task named, or the one the --model kind belongs to (codec when neither is given)."""
    by_model = next((name for name, kinds in KINDS.items() if model in kinds), None)
    if task and by_model and task != by_model:
        raise UserError(f"--model {model} is not a {task} model")
    if task is None and model is not None and by_model is None:
        raise UserError(f"unknown model '{model}' (choose {', '.join(k for kinds in KINDS.values() for k in kinds)})")
    return task or by_model or "codec"


def task_class(name: str) -> type:
    """The class of the task NAME (train/task.py), imported when chosen: each imports torch."""
    if name == "codec":
        from ..codec.train import CodecTask as task
    elif name == "denoise":
        from ..denoise.train import DenoiseTask as task
    elif name == "autoencoder":
        from ..family.train import FamilyTask as task
    else:
        raise ValueError(f"unknown task {name!r}")
    return task


def main(**given) -> int:
    """`aecli train` with the options of config.Asked; the exit status."""
    from .distributed import is_rank0
    from .loop import train

    a = Asked(**given)
    cfg, changes, budget, task = _config(a)
    if not is_rank0():  # data-parallel training (torchrun): rank 0 alone writes train.log and prints
        return _run(train, cfg, a.resume, lambda msg: None, changes, lambda msg: None, budget)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "train.log", "a") as logf:
        def log(msg: str) -> None:
            print(msg, file=logf, flush=True)
            if not sys.stderr.isatty():
                print(msg, file=sys.stderr, flush=True)

        def say(msg: str) -> None:  # what a user must see, on a terminal too: the first and last lines
            print(msg, file=logf, flush=True)
            print(msg, file=sys.stderr, flush=True)

        for note in task.notes(cfg):
            log(note)
        status = _run(train, cfg, a.resume, log, changes, say, budget)
        if a.install and status == 0:
            from .. import registry

            m, _ = registry.install(a.out, force=True)  # (this run's own name: a retrained model replaces its weights)
            say(f"installed as '{m.name}' in {m.weights.parent}: use it by name, --model {m.name}")
        return status


def _config(a: Asked) -> tuple[TrainConfig, tuple[str, ...], str, type]:
    """The run's TrainConfig, what a resumed run changes of its checkpoint's, what the first line says
    of the run's length, and the task's class; a UserError for options that do not fit."""
    if not a.data.exists():
        raise UserError(f"training data not found: {a.data}")
    name = task_of(a.task, a.model)
    if a.time_limit is not None and a.time_limit < 0:
        raise UserError("--time-limit must not be negative")
    for option, value in (("--steps", a.steps), ("--epochs", (a.family or {}).get("epochs"))):
        if value is not None and value < 1:  # (0 once meant the default budget, silently)
            raise UserError(f"{option} must be at least 1")
    if a.real_noise and name != "denoise":
        raise UserError("--real-noise is for --task denoise")
    if a.init is not None and a.resume:
        raise UserError("--init starts a new run; a resumed run continues from its own checkpoint")
    family = {k: v for k, v in (a.family or {}).items() if v is not None}
    # a resumed run keeps its checkpoint's schedule and recipe, except what is asked for here
    given = {"steps": a.steps if a.steps is not None else family.get("epochs"), "log_every": a.log_every,
             "ckpt_every": a.ckpt_every, "val_every": a.val_every, "batch_size": a.batch_size, "patch": a.patch, "lr": a.lr}
    changes = tuple(k for k, v in given.items() if v is not None)
    if name != "autoencoder" and family:
        named = sorted("--" + ("latent-dim" if k == "latent" else k.replace("_", "-")) for k in family)
        raise UserError(f"{', '.join(named)}: only for the autoencoder "
                        f"family (--model {'|'.join(KINDS['autoencoder'])})")
    task = task_class(name)
    d = {**task.DEFAULTS, **(task.FINETUNE if a.init is not None else {})}
    if a.resume and a.batch_size is None:  # the run's own batch size (--epochs counts its batches)
        from .checkpoint import read_checkpoint

        a = replace(a, batch_size=(read_checkpoint(a.out / "checkpoint.pt").get("config") or {}).get("batch_size"))
    a = replace(a, batch_size=a.batch_size or d["batch_size"], lr=a.lr or d["lr"], patch=a.patch or d["patch"],
                family=family)
    a, options = task.recipe(a)
    budget = ""
    if a.steps is None and not a.resume:
        steps, time_limit, budget = default_budget(a.device, d["steps"], a.time_limit, a.init is not None)
        a = replace(a, steps=steps, time_limit=time_limit)
    a = replace(a, steps=a.steps or d.get("steps"), time_limit=a.time_limit or 0.0, ckpt_every=a.ckpt_every or 500,
                val_every=a.val_every or 2000, log_every=a.log_every or 50)
    task.check(a, options)
    if not a.resume and (a.out / "checkpoint.pt").exists():
        raise UserError(f"{a.out / 'checkpoint.pt'} exists: add --resume to continue it, or choose another --out")
    cfg = TrainConfig(data=str(a.data), out=str(a.out), task=name, model=a.model, steps=a.steps, batch_size=a.batch_size,
                      patch=a.patch, lr=a.lr, lr_decay_at=task.LR_DECAY_AT, seed=a.seed, device=a.device,
                      holdout=task.holdout(a), log_every=a.log_every, ckpt_every=a.ckpt_every, val_every=a.val_every,
                      threads=a.threads, time_limit=a.time_limit, init=a.init, options=options)
    return cfg, changes, budget, task


def default_budget(device: str, gpu_steps: int, time_limit: float | None, finetune: bool) -> tuple[int, float | None, str]:
    """(steps, time limit, what the start line says of them) when --steps is not given: on a GPU the
    task's full recipe; on a CPU a run of minutes to an hour (CPU_BUDGET), unless --time-limit says."""
    from ..devices import pick_device

    what = "fine-tuning" if finetune else "training from scratch"
    if pick_device(device).type != "cpu":
        return gpu_steps, time_limit, f"the GPU default for {what}"
    steps, seconds = CPU_BUDGET["finetune" if finetune else "scratch"]
    return steps, seconds if time_limit is None else time_limit, f"the CPU default for {what}; --steps and --time-limit change it"


def _run(train, cfg: TrainConfig, resume: bool, log, changes: tuple[str, ...], say=None, budget: str = "") -> int:
    """Train; the exit status: 0, or 128 + the signal number when a signal stopped the run (after its
    checkpoint), as a shell reports a process ended by that signal (130 for Ctrl-C)."""
    from .loop import Interrupted

    try:
        train(cfg, task_class, resume=resume, log=log, changes=changes, say=say, budget=budget)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    except Interrupted as exc:
        return 128 + exc.signum
    return 0

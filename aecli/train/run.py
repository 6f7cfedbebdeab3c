"""`aecli train`: check the arguments, then hand over to the training loop."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserError
from ..format import NAME_RULE, normalise_name, valid_name

CODEC_KINDS = ("hyperprior", "checkerboard", "factorized")
DENOISE_KINDS = ("unet",)
FAMILY_KINDS = ("dense", "conv", "vae", "sparse", "contractive", "denoising")
DEFAULT_MODEL = {"codec": "hyperprior", "denoise": "unet", "autoencoder": "dense"}
DEFAULT_CHANNELS = {"codec": "64,128", "denoise": "32,64,128"}
DEFAULT_SIGMA_RANGE = "0,50"
# per-task defaults of the shared options: steps (on a GPU), batch size, crop size, learning rate
TASK_DEFAULTS = {
    "codec": {"steps": 100_000, "batch_size": 8, "patch": 128, "lr": 1e-4},
    "denoise": {"steps": 100_000, "batch_size": 16, "patch": 128, "lr": 2e-4},
    "autoencoder": {"epochs": 20, "batch_size": 256, "patch": 0, "lr": 1e-3},
}
# fine-tuning a trained model (--init): a lower learning rate and far fewer steps than from scratch
# (the codec's: the recipe of scripts/finetune_aerials.sh)
FINETUNE = {
    "codec": {"steps": 5000, "batch_size": 4, "patch": 256, "lr": 3e-5},
    "denoise": {"steps": 5000, "lr": 4e-5},
}
# the default length of a run on a CPU: (steps, seconds), whichever comes first; the GPU default is
# the steps above with no time limit
CPU_BUDGET = {"scratch": (5000, 3600), "finetune": (400, 1800)}


def task_of(task: str | None, model: str | None) -> str:
    """The task named, or the one the --model kind belongs to (codec when neither is given)."""
    by_model = None
    if model in CODEC_KINDS:
        by_model = "codec"
    elif model in DENOISE_KINDS:
        by_model = "denoise"
    elif model in FAMILY_KINDS:
        by_model = "autoencoder"
    if task and by_model and task != by_model:
        raise UserError(f"--model {model} is not a {task} model")
    if task is None and model is not None and by_model is None:
        kinds = ", ".join(CODEC_KINDS + DENOISE_KINDS + FAMILY_KINDS)
        raise UserError(f"unknown model '{model}' (choose {kinds})")
    return task or by_model or "codec"


def _default_budget(device: str, gpu_steps: int, time_limit: float | None, finetune: bool) -> tuple[int, float | None, str]:
    """(steps, time limit, what the start line says of them) when --steps is not given: on a GPU the
    task's full recipe; on a CPU a run of minutes to an hour (CPU_BUDGET), unless --time-limit says."""
    from ..devices import pick_device

    what = "fine-tuning" if finetune else "training from scratch"
    if pick_device(device).type != "cpu":
        return gpu_steps, time_limit, f"the GPU default for {what}"
    steps, seconds = CPU_BUDGET["finetune" if finetune else "scratch"]
    return steps, seconds if time_limit is None else time_limit, f"the CPU default for {what}; --steps and --time-limit change it"


def _codec_source(init: str, model: str | None, channels: str | None, quality: int | None) -> dict:
    """The architecture of the codec --init starts from (kind, n, m, lambdas, nh): the new model is
    built like it, so that every tensor carries over, the quality levels included."""
    from .init import source_architecture

    arch = source_architecture(init, "codec")
    if arch.get("kind") not in CODEC_KINDS or not arch.get("lambdas"):
        raise UserError(f"--init {init}: its architecture is not recorded (give a codec model or a codec checkpoint)")
    if model is not None and model != arch["kind"]:
        raise UserError(f"--init {init} is a {arch['kind']} codec: leave out --model, or give --model {arch['kind']}")
    if channels is not None:
        raise UserError(f"--channels: a fine-tuned codec keeps the widths of --init {init} ({arch['n']},{arch['m']})")
    if quality is not None:
        raise UserError("--quality: a fine-tuned codec keeps every quality level of the model it starts from")
    return arch


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


def main(*, data: Path, out: Path, task: str | None, model: str | None, quality=None, steps: int | None = None,
         batch_size: int | None = None, patch: int | None = None, lr: float | None = None, channels: str | None = None,
         seed: int = 0, device: str = "auto", threads: int = 0, holdout: int | None = None, ckpt_every: int | None = None,
         val_every: int | None = None, log_every: int | None = None, resume: bool = False,
         sigma_range: str | None = None, blocks: int | None = None, family: dict | None = None,
         time_limit: float | None = None, real_noise: bool = False, init: str | None = None,
         install: bool = False) -> int:
    if not data.exists():
        raise UserError(f"training data not found: {data}")
    task = task_of(task, model)
    model_given = model
    model = model or DEFAULT_MODEL[task]
    d = {**TASK_DEFAULTS[task], **(FINETUNE.get(task, {}) if init is not None else {})}
    if time_limit is not None and time_limit < 0:
        raise UserError("--time-limit must not be negative")
    if real_noise and task != "denoise":
        raise UserError("--real-noise is for --task denoise")
    if init is not None and resume:
        raise UserError("--init starts a new run; a resumed run continues from its own checkpoint")
    # a resumed run keeps its checkpoint's schedule and recipe, except what is asked for here
    given = {"steps": steps if task != "autoencoder" or steps is not None else (family or {}).get("epochs"),
             "log_every": log_every, "ckpt_every": ckpt_every, "val_every": val_every,
             "batch_size": batch_size, "patch": patch, "lr": lr}
    changes = tuple(k for k, v in given.items() if v is not None)
    batch_size = batch_size or d["batch_size"]
    lr = lr or d["lr"]
    patch = patch or d["patch"]
    family = {k: v for k, v in (family or {}).items() if v is not None}
    if task != "autoencoder" and family:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in sorted(family))}: only for the autoencoder "
                        f"family (--model {'|'.join(FAMILY_KINDS)})")
    extra: dict = {}
    n, m = (int(v) for v in DEFAULT_CHANNELS["codec"].split(","))
    widths: list[int] = []
    lr_decay_at = 0.9
    if task == "codec":
        if sigma_range is not None or blocks is not None:
            raise UserError("--sigma-range and --blocks are for --task denoise")
        from ..codec.model import LAMBDAS

        if init is not None:  # fine-tuning: the source's kind, widths and quality levels
            arch = _codec_source(init, model_given, channels, quality)
            model, channels = arch["kind"], f"{arch['n']},{arch['m']}"
        if quality is not None and not 1 <= quality <= len(LAMBDAS):
            raise UserError(f"--quality must be 1..{len(LAMBDAS)}")
        vals = _ints(channels or DEFAULT_CHANNELS["codec"], "--channels must be two integers N,M such as 64,128")
        if len(vals) != 2:
            raise UserError("--channels must be two integers N,M such as 64,128")
        n, m = vals
        widths = vals
        # the levels go into the recipe, so that a resumed run keeps them whatever the default becomes
        extra = {"lambdas": [LAMBDAS[quality - 1]] if quality is not None else list(LAMBDAS)}
        if init is not None:
            extra = {"lambdas": [float(v) for v in arch["lambdas"]], **({"nh": arch["nh"]} if arch.get("nh") else {})}
    elif task == "denoise":
        if quality is not None:
            raise UserError("--quality is for --task codec")
        arch: dict = {}
        if init is not None and not resume:  # fine-tuning: the architecture of the model it starts from
            from .init import source_architecture

            arch = source_architecture(init, "denoise")
            if channels is None and arch.get("widths"):
                channels = ",".join(str(w) for w in arch["widths"])
            if blocks is None and arch.get("blocks") is not None:
                blocks = int(arch["blocks"])
            if arch.get("estimator") and sigma_range is None:
                real_noise = True  # a blind real-noise model stays one
        if blocks is not None and not 1 <= blocks <= 8:
            raise UserError("--blocks must be 1..8")
        widths = _ints(channels or DEFAULT_CHANNELS["denoise"], "--channels must be integers, the U-Net widths per scale, such as 32,64,128")
        if not 1 <= len(widths) <= 6:
            raise UserError("--channels must give 1 to 6 U-Net widths, such as 32,64,128")
        extra = {"widths": widths, "sigma_range": _sigma_range(sigma_range or DEFAULT_SIGMA_RANGE)}
        if real_noise:
            if sigma_range is not None:
                raise UserError("--sigma-range is for Gaussian-noise training; --real-noise draws its own noise")
            extra["noise"] = "real"
            if arch.get("estimator"):
                extra["estimator"] = arch["estimator"]
        if blocks is not None:
            extra["blocks"] = blocks
    else:
        if quality is not None or sigma_range is not None or blocks is not None:
            raise UserError("--quality, --sigma-range and --blocks are not options of the autoencoder family")
        extra, steps = _family_options(data, model, channels, family, steps, batch_size, seed, resume, out)
        lr_decay_at = 1.0  # constant learning rate, as in the seed's Keras example
        ckpt_every = ckpt_every or extra.pop("_steps_per_epoch")
        val_every = val_every or ckpt_every
        log_every = log_every or max(1, ckpt_every // 4)
        extra.pop("_steps_per_epoch", None)
    budget = ""
    if steps is None and task != "autoencoder" and not resume:
        steps, time_limit, budget = _default_budget(device, d["steps"], time_limit, init is not None)
    steps = steps or d.get("steps")
    time_limit = time_limit or 0.0
    ckpt_every, val_every, log_every = ckpt_every or 500, val_every or 2000, log_every or 50
    if min(steps, batch_size, *(widths or [1])) < 1 or (task != "autoencoder" and patch < 1):
        raise UserError("--steps, --batch-size, --patch and --channels must be positive")
    if patch % 64 and task == "codec" and model in ("hyperprior", "checkerboard"):
        raise UserError(f"--patch must be a multiple of 64 for the {model} codec")
    if task == "denoise" and patch % 2 ** (len(widths) - 1):
        raise UserError(f"--patch must be a multiple of {2 ** (len(widths) - 1)} for a {len(widths)}-scale U-Net")
    ckpt = out / "checkpoint.pt"
    if not resume and ckpt.exists():
        raise UserError(f"{ckpt} exists: add --resume to continue it, or choose another --out")

    from .data import list_images
    from .distributed import is_rank0
    from .loop import TrainConfig, train

    if task == "denoise":  # the whole recipe goes into the checkpoint, so that a resume keeps it
        from .denoise_task import DEFAULTS

        extra = {**DEFAULTS, **extra}
    if task != "autoencoder":
        found = len(list_images(data))
        if not found:
            raise UserError(f"no images found under {data}")
        if holdout is None:  # one image in 8 for validation, at least 1, at most 8
            holdout = min(8, max(1, found // 8)) if found > 1 else 0
    holdout = 8 if holdout is None else holdout
    cfg = TrainConfig(data=str(data), out=str(out), task=task, model=model, n=n, m=m, quality=quality, steps=steps,
                      batch_size=batch_size, patch=patch, lr=lr, lr_decay_at=lr_decay_at, seed=seed, device=device,
                      holdout=holdout, log_every=log_every, ckpt_every=ckpt_every, val_every=val_every, threads=threads,
                      time_limit=time_limit, extra=extra, init=init)
    if not is_rank0():  # data-parallel training (torchrun): rank 0 alone writes train.log and prints
        return _run(train, cfg, resume, lambda msg: None, changes, lambda msg: None, budget)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as logf:
        def log(msg: str) -> None:
            print(msg, file=logf, flush=True)
            if not sys.stderr.isatty():
                print(msg, file=sys.stderr, flush=True)

        def say(msg: str) -> None:  # what a user must see, on a terminal too: the first and last lines
            print(msg, file=logf, flush=True)
            print(msg, file=sys.stderr, flush=True)

        if task == "codec" and not valid_name(out.name):
            log(f"note: '{out.name}' is not a model name a .lat file can hold ({NAME_RULE}): "
                f"the model is exported as '{normalise_name(out.name)}'")
        status = _run(train, cfg, resume, log, changes, say, budget)
        if install and status == 0:
            from .. import registry

            m, _ = registry.install(out, force=True)  # (this run's own name: a retrained model replaces its weights)
            say(f"installed as '{m.name}' in {m.weights.parent}: use it by name, --model {m.name}")
        return status


def _run(train, cfg, resume: bool, log, changes: tuple[str, ...], say=None, budget: str = "") -> int:
    """Train; the exit status: 0, or 128 + the signal number when a signal stopped the run (after its
    checkpoint), as a shell reports a process ended by that signal (130 for Ctrl-C)."""
    from .loop import Interrupted

    try:
        train(cfg, resume=resume, log=log, changes=changes, say=say, budget=budget)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    except Interrupted as exc:
        return 128 + exc.signum
    return 0


def _family_options(data: Path, kind: str, channels: str | None, o: dict, steps: int | None, batch_size: int,
                    seed: int, resume: bool, out: Path) -> tuple[dict, int]:
    """Check the family's options; return the recipe (TrainConfig.extra) and the number of steps."""
    from ..family.data import infer_shape, list_files
    from ..family.models import LIMITS
    from .family_task import DEFAULTS, steps_for_epochs

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
        if kind not in ("conv", "denoising"):
            raise UserError("--channels is for --model conv or denoising (the conv widths, such as 32,64)")
        o["channels"] = _ints(channels, "--channels must be integers such as 32,64")
        if not 1 <= len(o["channels"]) <= 5 or min(o["channels"]) < 1:
            raise UserError("--channels must give 1 to 5 positive widths, such as 32,64")
    if o.get("hidden") is not None:
        text = o["hidden"].strip()
        o["hidden"] = [] if text in ("", "none", "0") else _ints(text, "--hidden must be integers such as 256,128")
        if any(v < 1 for v in o["hidden"]):
            raise UserError("--hidden sizes must be positive")
    files = list_files(data)
    if not files:
        raise UserError(f"no images found under {data}")
    if resume and (out / "checkpoint.pt").exists():
        # the recipe comes from the checkpoint; only the length may change
        from .loop import read_checkpoint

        saved = read_checkpoint(out / "checkpoint.pt")["config"].get("extra")
        if not isinstance(saved, dict) or "shape" not in saved:
            raise UserError(f"cannot resume from {out / 'checkpoint.pt'}: it is not a checkpoint of the autoencoder family")
        o = {**saved, **{k: v for k, v in o.items() if k == "epochs"}}
    else:
        o = {**DEFAULTS, **o, "kind": kind}
        o["shape"] = list(infer_shape(files[0], o.get("image_size"), o.get("grayscale", False)))
        if max(o["shape"][1:]) > LIMITS["side"]:
            raise UserError(f"{files[0]} is {o['shape'][2]}x{o['shape'][1]}: the autoencoder family takes images of at "
                            f"most {LIMITS['side']} pixels a side; give --image-size")
    n_val = 0 if o.get("val_dir") else int(round(len(files) * o["val_split"]))
    per_epoch = max(1, -(-(len(files) - n_val) // batch_size))
    if steps is None:
        steps = steps_for_epochs(o.get("epochs") or TASK_DEFAULTS["autoencoder"]["epochs"], len(files) - n_val, batch_size)
    o["epochs"] = o.get("epochs") or round(steps / per_epoch, 3)
    return {**o, "_steps_per_epoch": per_epoch}, steps

"""One training loop for every task: progress, validation, atomic checkpoints, resume.

A task (see aecli/train/tasks.py) supplies the model, the loss of a batch, validation and
the export of inference weights; this loop does the rest:

    for step in range(start, steps):
        batch = data.batch(batch_size, generator)
        loss, stats = task.loss(model, batch, generator)
        optimise
        every log_every: print stats; every ckpt_every: checkpoint + export; every val_every: validate

The random generators' states, the optimizer's and the schedule are part of the checkpoint, so a
resumed run continues with the same batches, noise and learning rates as an uninterrupted one.
Its weights agree with the uninterrupted run's to float rounding, not bit for bit: the CPU's
convolution kernels sum a gradient in an order that can depend on where its buffers lie in
memory (even the last layer's bias gradient, a plain sum of identical values, can differ in its
last bit), and such differences grow over the following steps (to about 1e-8..5e-7 here).

Launched by torchrun (`torchrun --nproc_per_node=N -m aecli train ...`), the same loop runs in
every process as data-parallel training: aecli/train/distributed.py says how (each rank's slice
of the global batch, gradients averaged over the ranks, rank 0 alone writes files).
"""

from __future__ import annotations

import json
import math
import platform
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..devices import pick_device
from ..errors import UserError
from ..progress import progress_bar


@dataclass
class TrainConfig:
    data: str
    out: str
    task: str = "codec"
    model: str = "hyperprior"
    n: int = 64
    m: int = 128
    quality: int | None = None  # train one quality only (codec)
    steps: int = 100_000
    batch_size: int = 8
    patch: int = 128
    lr: float = 1e-4
    lr_decay_at: float = 0.9  # fraction of steps after which lr is divided by 10
    gain_lr_scale: float = 10.0  # codec: learning-rate multiplier of the per-quality gain vectors
    seed: int = 0
    device: str = "auto"
    holdout: int = 8
    log_every: int = 50
    ckpt_every: int = 500
    val_every: int = 2000
    threads: int = 0
    time_limit: float = 0.0  # seconds of training for this process, then checkpoint and stop (0: none)
    extra: dict = field(default_factory=dict)
    init: str | None = None  # start from this model's weights (aecli/train/init.py); a fresh run only


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"{platform.machine()} CPU x{torch.get_num_threads()} threads"


def _atomic_save(obj, path: Path) -> None:
    """torch.save through a unique temporary file, fsync'ed before the rename (atomic.py)."""
    from ..atomic import replace_atomically

    replace_atomically(Path(path), lambda f: torch.save(obj, f), 0o644)


class Stop(Exception):
    pass


class Interrupted(Exception):
    """Training stopped by a signal (Ctrl-C, SIGTERM) after writing its checkpoint."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class Diverged(UserError):
    """The loss stopped being finite."""


# what a resumed run may change: this process's own settings always; the schedule and the recipe
# only where asked for explicitly (`changes`), else they come from the checkpoint
ALWAYS_NEW = ("device", "threads", "time_limit", "data", "out")
SCHEDULE = ("steps", "log_every", "ckpt_every", "val_every")
RECIPE_CHANGES = ("batch_size", "patch", "lr")
CHECKPOINT_KEYS = ("config", "model", "opt", "gen", "torch_rng", "step", "seconds", "history")


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
    names = {f.name for f in fields(TrainConfig)}
    if not (isinstance(state, dict) and all(k in state for k in CHECKPOINT_KEYS) and isinstance(state["config"], dict)
            and {"data", "out"} <= set(state["config"]) <= names):
        raise UserError(f"cannot resume from {path}: it is not an aecli training checkpoint (fields missing)")
    return state


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of a step: cfg.lr, divided by 10 from lr_decay_at of the steps on."""
    return cfg.lr * (0.1 if step >= cfg.lr_decay_at * cfg.steps else 1.0)


def _resumed_config(cfg: TrainConfig, state: dict, changes: tuple[str, ...], log) -> TrainConfig:
    """The checkpoint's recipe and schedule, with this process's settings and the explicitly asked
    `changes`; each change is logged (with what it does to the learning rate at the resumed step)."""
    unknown = set(changes) - set(SCHEDULE + RECIPE_CHANGES)
    if unknown:
        raise ValueError(f"a resumed run cannot change {sorted(unknown)}")
    saved = state["config"]
    keep = {k: getattr(cfg, k) for k in ALWAYS_NEW + tuple(changes)}
    try:
        new, old = TrainConfig(**{**saved, **keep}), TrainConfig(**saved)
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


def _restore(state: dict, model, opt, aux_opt, gen, log) -> None:
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


def train(cfg: TrainConfig, resume: bool = False, log=print, changes: tuple[str, ...] = (), say=None,
          budget: str = "") -> Path:
    """Train (or continue) the run `cfg` describes.

    `changes`: fields of SCHEDULE and RECIPE_CHANGES that a resumed run takes from `cfg` instead of
    the checkpoint (say, more steps, a larger batch on a GPU, or a lower learning rate for the last
    steps); each segment of the run records its own batch size, crop and learning rate.  A run
    stopped by a signal raises Interrupted once its checkpoint is written.

    `say`: where the first and last lines go (what is trained on what; where the model is, its
    validation figures and the command that uses it): `log` when not given. `budget`: what the
    first line says of the run's length (such as "the CPU default").
    """
    from . import distributed

    group = distributed.setup(cfg.device)  # None unless launched by torchrun with several processes
    out, signum = _train(cfg, resume, log, group, changes, say or log, budget)
    if group is not None:  # (after an error, torchrun ends the other processes)
        group.close()  # waits for rank 0's last validation and checkpoint, so that all exit together
    if signum:
        raise Interrupted(signum)
    return out


def _train(cfg: TrainConfig, resume: bool, log, group, changes: tuple[str, ...] = (), say=None,
           budget: str = "") -> tuple[Path, int | None]:
    from .tasks import get_task

    main = group is None or group.main  # the process that writes files and logs
    say = say or log
    if not main:
        log = say = _quiet
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = group.device if group is not None else pick_device(cfg.device)

    state = None
    if resume:
        state = read_checkpoint(ckpt_path)
        log(f"resumed from {ckpt_path} at step {state['step']}")
        cfg = _resumed_config(cfg, state, changes, log)
    local_batch = group.local_batch(cfg.batch_size) if group is not None else cfg.batch_size

    torch.manual_seed(cfg.seed)
    task = get_task(cfg)
    data = task.dataset(cfg)
    model = task.build(cfg).to(device)
    opt, aux_opt = task.optimizers(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list = []
    segments: list = []  # one entry per process that trained this run: steps, hardware, seconds
    extensions: list = []
    step, seconds = 0, 0.0
    say(start_line(cfg, data, device, budget, state["step"] if state is not None else None))
    if state is None and cfg.init:
        from .init import initialise

        initialise(model, cfg.init, cfg.task, log)
    if state is not None:
        _restore(state, model, opt, aux_opt, gen, log)
        step, seconds, history = state["step"], state["seconds"], state["history"]
        segments = state.get("segments", [])
        extensions = state.get("extensions", [])  # changes made outside this loop (scripts/extend_qualities.py)
    if group is not None:
        group.broadcast_(model)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels
    segment = {"from_step": step, "to_step": step, "hardware": hardware(device), "seconds": 0.0,
               "batch_size": cfg.batch_size, "patch": cfg.patch, "lr": cfg.lr}
    if group is not None:
        segment["hardware"] = f"{group.world} processes x {hardware(device)}, {group.backend}"
        segment.update(processes=group.world, backend=group.backend)
    segments.append(segment)
    start_seconds = seconds
    last_saved = (ckpt_path, step) if state is not None else None  # for the advice if the loss diverges

    def checkpoint() -> None:
        nonlocal last_saved
        segment["to_step"], segment["seconds"] = step, round(seconds - start_seconds, 1)
        _atomic_save(
            {
                "config": asdict(cfg),
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "aux_opt": aux_opt.state_dict() if aux_opt is not None else {},
                "gen": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "seconds": seconds,
                "history": history,
                "segments": segments,
                **({"extensions": extensions} if extensions else {}),
            },
            ckpt_path,
        )
        last_saved = (ckpt_path, step)
        record = training_record(cfg, data, step, seconds, segments, extensions, device)
        task.export(model, cfg, out, record, history)

    def validate():
        """Validation must not disturb the training's random stream (a resumed run draws what an
        uninterrupted one does). On a terminal, a line of its own says it is running."""
        shown = bar.add_task("validating", total=None, stats=f"on {_held_out(data)}")
        model.eval()
        with torch.random.fork_rng(devices=[]):
            val = task.validate(model, data, device)
        model.train()
        bar.remove_task(shown)
        return val

    # Ctrl-C / SIGTERM: finish the step, write a checkpoint, stop.
    stop = {"flag": False, "all": False}  # asked here; agreed by all ranks (data-parallel)

    def on_signal(signum, frame):
        stop["flag"] = True
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
    # data-parallel: task.loss draws its random numbers for the global batch and keeps this rank's slice
    same_random = (lambda: group.slice_random(local_batch)) if group is not None else nullcontext

    model.train()
    began = time.monotonic()  # for --time-limit
    running: dict[str, float] = {}
    counted = 0
    last_val = ""
    with progress_bar(None if main else False) as bar:
        try:
            job = bar.add_task("train", total=cfg.steps, completed=step, stats="")
            first_step = step
            while step < cfg.steps and not stop["flag" if group is None else "all"]:
                t0 = time.perf_counter()
                for g in opt.param_groups:
                    g["lr"] = lr_at(cfg, step) * g.get("lr_scale", 1.0)
                if hasattr(data, "batch_u8"):  # 8-bit crops go to the device, which makes them floats
                    batch = data.batch_u8(cfg.batch_size, gen)
                    batch = group.shard(batch) if group is not None else batch
                    batch = batch.to(device).float().div_(255.0)
                else:
                    batch = data.batch(cfg.batch_size, gen)
                    batch = (group.shard(batch) if group is not None else batch).to(device)
                with same_random():
                    loss, stats = task.loss(model, batch, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if group is not None:
                    group.average_gradients_(model.parameters())
                clip = getattr(task, "grad_clip", 1.0)
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                if aux_opt is not None:
                    aux_opt.zero_grad(set_to_none=True)
                    aux = model.aux_loss()
                    aux.backward()
                    aux_opt.step()
                    stats["aux"] = aux.detach()
                if group is not None:  # the global batch's stats; a stop asked on any rank stops all
                    stats, stop["all"] = group.reduce_stats({k: float(v) for k, v in stats.items()}, stop["flag"])
                step += 1
                seconds += time.perf_counter() - t0
                elapsed = time.monotonic() - began
                if cfg.time_limit and elapsed >= cfg.time_limit:
                    stop["flag"] = stop["timed_out"] = True  # (data-parallel: agreed at the next step)
                if cfg.time_limit:  # the bar ends where the time limit will stop it, and so does its ETA
                    per_step, left = elapsed / (step - first_step), max(0.0, cfg.time_limit - elapsed)
                    bar.update(job, total=max(step, min(cfg.steps, step + int(left / per_step))),
                               eta=min(left, (cfg.steps - step) * per_step))
                for k, v in stats.items():  # (device tensors or floats: summed without waiting for the GPU)
                    running[k] = running.get(k, 0.0) + v
                counted += 1
                logging = step % cfg.log_every == 0 or step == cfg.steps
                if logging or (step % cfg.val_every == 0 and main) or (step % cfg.ckpt_every == 0 and main):
                    finite(running, step, last_saved)  # never log, validate or save a diverged model
                if logging:
                    mean = {k: float(v) / counted for k, v in running.items()}
                    running.clear()
                    counted = 0
                    history.append({"step": step, **{k: round(v, 5) for k, v in mean.items()}})
                    text = " ".join(f"{k}={v:.4g}" for k, v in mean.items())
                    bar.update(job, completed=step, stats=text + last_val)
                    log(f"step {step} {text} ({seconds:.0f}s)")
                else:
                    bar.update(job, completed=step)
                if step % cfg.val_every == 0 and main:
                    val = validate()
                    history.append(validation_entry(task, step, val))
                    if isinstance(val, dict) and "loss" in val:
                        last_val = f" val_loss={val['loss']:.4g}"
                    log(f"validation at step {step}: {json.dumps(val)}")
                if step % cfg.ckpt_every == 0 and main:
                    checkpoint()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if not main:
            return out, stop.get("signal")
        if stop.get("timed_out"):
            log(f"time limit of {cfg.time_limit:g} s reached at step {step}: writing a checkpoint (resume with --resume)")
        elif stop["flag" if group is None else "all"]:
            log(f"interrupted at step {step}: writing a checkpoint (resume with --resume)")
        if not any(h["step"] == step for h in validations(task, history)):  # the exported figures are the final ones
            history.append(validation_entry(task, step, validate()))
        checkpoint()
    log(f"saved {out} at step {step}")
    last = validations(task, history)
    say(end_line(cfg, task, step, seconds, last[-1]["val"] if last else None, data))
    for warning in usefulness_warnings(cfg, task, step, last[-1]["val"] if last else None):
        say(f"aecli: warning: {warning}")
    return out, stop.get("signal") if not stop.get("timed_out") else None


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
    trained, data, recipe, and the changes made outside this loop (`extensions`)."""
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
    from .init import source_training

    try:
        return source_training(spec, task)
    except Exception:  # noqa: BLE001 - the record is informative; the run already loaded the source
        return {}


def finite(running: dict, step: int, saved: tuple[Path, int] | None = None) -> None:
    """Raise Diverged if the loss summed since the last log is not finite (a NaN at any step shows
    there); `saved`: the last checkpoint written (path, step), None if there is none yet."""
    total = float(running.get("loss", 0.0))
    if not math.isfinite(total):
        if saved is None:
            advice = "no checkpoint was written before that: start again with a lower --lr"
        else:
            advice = f"resume from the last checkpoint ({saved[0]}, step {saved[1]}) with a lower --lr (--resume --lr ...)"
        raise Diverged(f"training diverged: the loss became {total} by step {step}; {advice}")


def _quiet(msg: str) -> None:
    pass


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---- what a user sees first and last ----------------------------------------------------------------

def _held_out(data) -> str:
    held = getattr(data, "val_images", None)
    if held is None:
        held = getattr(data, "val", None)  # (the autoencoder family's: a tensor)
    n = 0 if held is None else len(held)
    return f"{n} held-out image{'s' * (n != 1)}" if n else "training images (none held out)"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _architecture(cfg: TrainConfig) -> str:
    x = cfg.extra
    if cfg.task == "codec":
        levels = len(x.get("lambdas") or ()) or (1 if cfg.quality else 8)
        return f"a {cfg.model} codec (N={cfg.n}, M={cfg.m}, {levels} quality level{'s' * (levels != 1)})"
    if cfg.task == "denoise":
        noise = "real camera noise" if x.get("noise") == "real" else f"Gaussian noise {x.get('sigma_range')}"
        return f"a U-Net denoiser (widths {','.join(str(w) for w in x.get('widths', []))}, {noise})"
    return f"a {x.get('kind', cfg.model)} autoencoder"


def start_line(cfg: TrainConfig, data, device: torch.device, budget: str = "", resumed_at: int | None = None) -> str:
    """One line: what is trained on what, from which weights, where, for how long, into which folder."""
    n_train = len(data)
    what = "images" if cfg.task != "autoencoder" else "examples"
    source = f"from '{cfg.init}'" if cfg.init else "from scratch"
    if resumed_at is not None:
        source = f"resumed at step {resumed_at:,}"
    crops = f" of {cfg.batch_size} crops {cfg.patch}x{cfg.patch}" if cfg.task != "autoencoder" else f" of {cfg.batch_size}"
    length = f"{cfg.steps:,} steps{crops}"
    if cfg.time_limit:
        length += f" or {_minutes(cfg.time_limit)}, whichever comes first"
    threads = torch.get_num_threads()
    where = f"cpu, {threads} thread{'s' * (threads != 1)}" if device.type == "cpu" else hardware(device)
    return (f"training {_architecture(cfg)} {source} on {n_train} {what} of {cfg.data} ({_held_out(data)} for validation); "
            f"{where}; {length}{f' ({budget})' if budget else ''}; lr {cfg.lr:g}, seed {cfg.seed}; output {cfg.out}")


def _as_path(out: str) -> str:
    """OUT as --model takes a path (a bare name would be looked up among installed models)."""
    return out if "/" in out or out.startswith(".") else f"./{out}"


def _figures(task_name: str, val) -> str:
    """The validation figures worth a line: the codec's bpp/PSNR at its lowest, default and highest
    quality; the denoiser's PSNR at each noise level; the family's loss."""
    if not val:
        return "no validation figures"
    if task_name == "codec" and isinstance(val, list):
        rows = [val[0]] + ([val[len(val) // 2]] if len(val) > 2 else []) + ([val[-1]] if len(val) > 1 else [])
        return ", ".join(f"quality {r['quality']} {r['bpp']:.3f} bpp {r['psnr']:.2f} dB" for r in rows)
    if task_name == "denoise" and isinstance(val, list):
        return ", ".join(f"sigma {r['sigma']}: {r.get('psnr', r.get('psnr_blind')):.2f} dB" if "sigma" in r else
                         f"{r.get('noise')}: {r.get('psnr_noisy')} -> {r.get('psnr')} dB" for r in val)
    if isinstance(val, dict):
        return ", ".join(f"{k} {v:.4g}" for k, v in val.items() if isinstance(v, (int, float)))
    return json.dumps(val)


USE = {"codec": "aecli compress --model {m} photo.png  (aecli decompress --model {m} photo.lat)",
       "denoise": "aecli denoise --model {m} noisy.png", "autoencoder": "aecli embed --model {m} images/"}


def end_line(cfg: TrainConfig, task, step: int, seconds: float, val, data) -> str:
    """One line: where the model is, its validation figures, the command that uses it."""
    m = _as_path(cfg.out)
    return (f"model saved in {cfg.out} (step {step:,}, {_minutes(seconds)} of training); validation on {_held_out(data)}: "
            f"{_figures(cfg.task, val)}; use it: {USE.get(cfg.task, 'aecli --model {m}').format(m=m)}; "
            f"install it under its name: aecli models install {m}")


def usefulness_warnings(cfg: TrainConfig, task, step: int, val) -> list[str]:
    """Warnings when the model is far from useful: trained from scratch for a small fraction of the
    steps of the bundled model of its task, or validating far worse than it did."""
    if cfg.task not in ("codec", "denoise") or cfg.init:
        return []
    from .. import registry

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
    if cfg.task == "codec" and isinstance(val, list) and val:
        ref = {r["quality"]: r for r in ((bundled.get("validation") or {}).get("estimated_rd") or [])}
        worse = [r for r in val if r.get("quality") in ref and r["psnr"] < ref[r["quality"]]["psnr"] - 2
                 and r["bpp"] > 0.8 * ref[r["quality"]]["bpp"]]
        if worse and len(worse) >= len(val) / 2:
            r = worse[len(worse) // 2]
            b = ref[r["quality"]]
            out.append(f"validation is far from '{name}': quality {r['quality']} gives {r['bpp']:.2f} bpp at "
                       f"{r['psnr']:.1f} dB here, '{name}' {b['bpp']:.2f} bpp at {b['psnr']:.1f} dB on its own "
                       f"validation images" + ("" if out else f"; {advice}"))
    return out

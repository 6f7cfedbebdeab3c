"""One training loop for every task: progress, validation, atomic checkpoints, resume.

The loop is handed a task (train/task.py: the model, the loss of a batch, validation, the export of
inference weights) and does the rest:

    resume: the checkpoint's recipe and state (checkpoint.py), else a fresh model (or --init's weights)
    for step in range(start, steps):
        batch = data.batch(batch_size, generator)
        loss, stats = task.loss(model, batch, generator)
        optimise
        every log_every: print stats; every val_every: validate; every ckpt_every: checkpoint + export
    at the end (or on Ctrl-C, SIGTERM, the time limit): validate, checkpoint + export, say where the model is

The random generators' states, the optimizer's and the schedule are part of the checkpoint, so a
resumed run continues with the same batches, noise and learning rates as an uninterrupted one.
Its weights agree with the uninterrupted run's to float rounding, not bit for bit: the CPU's
convolution kernels sum a gradient in an order that can depend on where its buffers lie in
memory (even the last layer's bias gradient, a plain sum of identical values, can differ in its
last bit), and such differences grow over the following steps (to about 1e-8..5e-7 here).

Launched by torchrun (`torchrun --nproc_per_node=N -m aecli train ...`), the same loop runs in
every process as data-parallel training: aecli/train/distributed.py says how (each rank's slice
of the global batch, gradients averaged over the ranks, rank 0 alone writes files); a single
process has the same methods, doing nothing.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from ..progress import progress_bar
from . import distributed
from .checkpoint import Run, read_checkpoint, restore, save, training_record, validation_entry, validations
from .config import TrainConfig, lr_at, resumed_config
from .init import initialise
from .report import end_line, held_out, start_line, usefulness_warnings
from .task import Task


class Interrupted(Exception):
    """Training stopped by a signal (Ctrl-C, SIGTERM) after writing its checkpoint."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class Diverged(UserError):
    """The loss stopped being finite."""


def train(cfg: TrainConfig, tasks: Callable[[str], type[Task]], resume: bool = False, log=print,
          changes: tuple[str, ...] = (), say=None, budget: str = "") -> Path:
    """Train (or continue) the run `cfg` describes; `tasks` gives the task class of a task's name.

    `changes`: fields of config.SCHEDULE and RECIPE_CHANGES that a resumed run takes from `cfg`
    instead of the checkpoint (say, more steps, a larger batch on a GPU, or a lower learning rate for
    the last steps); each segment of the run records its own batch size, crop and learning rate. A
    run stopped by a signal raises Interrupted once its checkpoint is written.

    `say`: where the first and last lines go (what is trained on what; where the model is, its
    validation figures and the command that uses it): `log` when not given. `budget`: what the
    first line says of the run's length (such as "the CPU default").
    """
    group = distributed.setup(cfg.device)  # a Group when launched by torchrun with several processes
    say = say or log
    if not group.main:  # rank 0 alone writes files and logs
        log = say = _quiet
    t = _start(cfg, tasks, resume, changes, group, log, say, budget)
    with progress_bar(None if group.main else False) as bar:
        with Stopping(group) as stop:
            _loop(t, stop, bar)
        if group.main:
            _last_checkpoint(t, stop, bar)
    if group.main:
        _last_lines(t)
    group.close()  # (data-parallel: waits for rank 0's last validation and checkpoint, so that all exit together)
    if stop.signum and not stop.timed_out:
        raise Interrupted(stop.signum)
    return Path(t.cfg.out)


@dataclass
class Training:
    """What the loop works on."""

    cfg: TrainConfig
    task: Task
    data: object  # the task's dataset
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    aux_opt: torch.optim.Optimizer | None
    gen: torch.Generator  # the data's and the task's random numbers
    group: distributed.Group | distributed.Single
    local_batch: int  # this process's part of the batch
    run: Run  # how far the run is (step, seconds, history, ...)
    last_saved: tuple[Path, int] | None  # the last checkpoint written (path, step), for Diverged's advice
    log: Callable
    say: Callable
    last_val: str = ""  # the last validation loss, for the progress bar


def _start(cfg: TrainConfig, tasks, resume: bool, changes: tuple[str, ...], group, log, say, budget: str) -> Training:
    """The run set up: its recipe (the checkpoint's, when resumed), data, model, optimizers and random
    generators, from the checkpoint's state or fresh (or --init's weights); says what it trains."""
    ckpt = Path(cfg.out) / "checkpoint.pt"
    if group.main:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state = None
    if resume:
        state = read_checkpoint(ckpt)
        log(f"resumed from {ckpt} at step {state['step']}")
        cfg = resumed_config(cfg, state, changes, tasks(state["config"].get("task", "codec")).Options, log)
    local_batch = group.local_batch(cfg.batch_size)

    torch.manual_seed(cfg.seed)
    task = tasks(cfg.task)(cfg)
    data = task.dataset(cfg)
    model = task.build(cfg).to(group.device)
    opt, aux_opt = task.optimizers(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    run = Run.from_state(state) if state is not None else Run()
    say(start_line(cfg, task, data, group.device, budget, run.step if state is not None else None))
    if state is None and cfg.init:
        initialise(model, cfg.init, cfg.task, log)
    if state is not None:
        restore(state, model, opt, aux_opt, gen, log)
    group.broadcast_(model)

    if group.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels
    run.begin_segment(cfg, **group.where())
    return Training(cfg, task, data, model, opt, aux_opt, gen, group, local_batch, run,
                    (ckpt, run.step) if state is not None else None, log, say)


def _loop(t: Training, stop: Stopping, bar) -> None:
    """Step until cfg.steps, a stop signal or the time limit; log, validate and checkpoint on schedule."""
    cfg, run = t.cfg, t.run
    t.model.train()
    began, first_step = time.monotonic(), run.step  # for --time-limit
    meter = Meter()
    job = bar.add_task("train", total=cfg.steps, completed=run.step, stats="")
    while run.step < cfg.steps and not stop.now:
        t0 = time.perf_counter()
        stats = _step(t, _batch(t))
        # data-parallel: the global batch's stats; a stop asked on any rank stops all
        stats, stop.agreed = t.group.reduce_stats(stats, stop.asked)
        run.step += 1
        run.seconds += time.perf_counter() - t0
        elapsed = time.monotonic() - began
        if cfg.time_limit and elapsed >= cfg.time_limit:
            stop.asked = stop.timed_out = True  # (data-parallel: agreed at the next step)
        if cfg.time_limit:  # the bar ends where the time limit will stop it, and so does its ETA
            per_step, left = elapsed / (run.step - first_step), max(0.0, cfg.time_limit - elapsed)
            bar.update(job, total=max(run.step, min(cfg.steps, run.step + int(left / per_step))),
                       eta=min(left, (cfg.steps - run.step) * per_step))
        meter.add(stats)
        _on_schedule(t, meter, bar, job)


def _batch(t: Training) -> torch.Tensor:
    """This process's part of the next batch, on the device (8-bit crops become floats there)."""
    data, size, group = t.data, t.cfg.batch_size, t.group
    if hasattr(data, "batch_u8"):
        return group.shard(data.batch_u8(size, t.gen)).to(group.device).float().div_(255.0)
    return group.shard(data.batch(size, t.gen)).to(group.device)


def _step(t: Training, batch: torch.Tensor) -> dict:
    """One optimisation step; the batch's stats (kept on the device: no wait for the GPU)."""
    for g in t.opt.param_groups:
        g["lr"] = lr_at(t.cfg, t.run.step) * g.get("lr_scale", 1.0)
    # data-parallel: task.loss draws its random numbers for the global batch and keeps this rank's slice
    with t.group.slice_random(t.local_batch):
        loss, stats = t.task.loss(t.model, batch, t.gen)
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    t.group.average_gradients_(t.model.parameters())
    if t.task.grad_clip:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.task.grad_clip)
    t.opt.step()
    if t.aux_opt is not None:
        t.aux_opt.zero_grad(set_to_none=True)
        aux = t.model.aux_loss()
        aux.backward()
        t.aux_opt.step()
        stats["aux"] = aux.detach()
    return stats


def _on_schedule(t: Training, meter: Meter, bar, job) -> None:
    """After a step: the log line, the validation and the checkpoint that are due."""
    cfg, step = t.cfg, t.run.step
    logging = step % cfg.log_every == 0 or step == cfg.steps
    validating = step % cfg.val_every == 0 and t.group.main
    saving = step % cfg.ckpt_every == 0 and t.group.main
    if logging or validating or saving:
        finite(meter.sums, step, t.last_saved)  # never log, validate or save a diverged model
    if logging:
        mean = meter.take()
        t.run.history.append({"step": step, **{k: round(v, 5) for k, v in mean.items()}})
        text = " ".join(f"{k}={v:.4g}" for k, v in mean.items())
        bar.update(job, completed=step, stats=text + t.last_val)
        t.log(f"step {step} {text} ({t.run.seconds:.0f}s)")
    else:
        bar.update(job, completed=step)
    if validating:
        val = _validate(t, bar)
        t.run.history.append(validation_entry(t.task, step, val))
        if isinstance(val, dict) and "loss" in val:
            t.last_val = f" val_loss={val['loss']:.4g}"
        t.log(f"validation at step {step}: {json.dumps(val)}")
    if saving:
        _checkpoint(t)


def _validate(t: Training, bar):
    """Validation must not disturb the training's random stream (a resumed run draws what an
    uninterrupted one does). On a terminal, a line of its own says it is running."""
    shown = bar.add_task("validating", total=None, stats=f"on {held_out(t.data)}")
    t.model.eval()
    with torch.random.fork_rng(devices=[]):
        val = t.task.validate(t.model, t.data, t.group.device)
    t.model.train()
    bar.remove_task(shown)
    return val


def _checkpoint(t: Training) -> None:
    """The checkpoint, then the inference weights with their training record."""
    out = Path(t.cfg.out)
    save(out / "checkpoint.pt", t.cfg, t.run, t.model, t.opt, t.aux_opt, t.gen)
    t.last_saved = (out / "checkpoint.pt", t.run.step)
    run = t.run
    record = training_record(t.cfg, t.data, run.step, run.seconds, run.segments, run.extensions, t.group.device)
    t.task.export(t.model, t.cfg, out, record, run.history)


def _last_checkpoint(t: Training, stop: Stopping, bar) -> None:
    """Say why the loop stopped early, if it did; validate unless done at this step; checkpoint and export."""
    step = t.run.step
    if stop.timed_out:
        t.log(f"time limit of {t.cfg.time_limit:g} s reached at step {step}: writing a checkpoint (resume with --resume)")
    elif stop.now:
        t.log(f"interrupted at step {step}: writing a checkpoint (resume with --resume)")
    if not any(h["step"] == step for h in validations(t.task, t.run.history)):  # the exported figures are the final ones
        t.run.history.append(validation_entry(t.task, step, _validate(t, bar)))
    _checkpoint(t)


def _last_lines(t: Training) -> None:
    """Where the model is, its validation figures and the command that uses it; warnings."""
    cfg, run = t.cfg, t.run
    t.log(f"saved {cfg.out} at step {run.step}")
    last = validations(t.task, run.history)
    val = last[-1]["val"] if last else None
    t.say(end_line(cfg, t.task, run.step, run.seconds, val, t.data))
    for warning in usefulness_warnings(cfg, t.task, run.step, val):
        t.say(f"aecli: warning: {warning}")


class Meter:
    """The stats summed since the last log line (device tensors or floats: summed without waiting for the GPU)."""

    def __init__(self):
        self.sums: dict = {}
        self.count = 0

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def take(self) -> dict[str, float]:
        """Their means; the sums start again."""
        mean = {k: float(v) / self.count for k, v in self.sums.items()}
        self.sums.clear()
        self.count = 0
        return mean


class Stopping:
    """Whether the loop stops before cfg.steps: asked by a signal (Ctrl-C, SIGTERM: the step is
    finished, a checkpoint written) or by the time limit. Data-parallel, a stop asked on any rank is
    agreed by all at the next step's reduction; a single process stops when asked."""

    def __init__(self, group):
        self.asked = self.agreed = self.timed_out = False
        self.signum: int | None = None
        self.shared = group.world > 1
        self._old: dict = {}

    @property
    def now(self) -> bool:
        return self.agreed if self.shared else self.asked

    def _on_signal(self, signum, frame) -> None:
        self.asked = True
        self.signum = signum

    def __enter__(self) -> Stopping:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


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

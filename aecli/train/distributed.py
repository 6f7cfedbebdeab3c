"""Data-parallel training across processes: `torchrun --nproc_per_node=N -m aecli train ...`.

torchrun (or any launcher that sets WORLD_SIZE, RANK and LOCAL_RANK, plus MASTER_ADDR and
MASTER_PORT) starts one process per device; without these variables, or with WORLD_SIZE=1,
training is the plain single-process loop (`Single`, whose methods do nothing). Every rank runs the same
loop of aecli/train/loop.py with the same seed, so the model, the optimizers and both random
generators start identical on every rank (the parameters are also broadcast from rank 0 once,
so that this holds whatever the initialisation does). Per step:

1. **Data.** `--batch-size` is the GLOBAL batch. Every rank draws the whole global batch from the
   shared generator, exactly as a single process would (the crops are cheap next to the
   network), and keeps its own slice: rank r takes samples [r*b, (r+1)*b), b = batch / world.
   The generators therefore advance identically on every rank and as in a single process.
2. **The task's other random numbers.** task.loss draws more: the quality per sample and the
   quantisation noise (codec, the latter from torch's global generator inside the model), the
   noise level and noise (denoise), the VAE's epsilon, the denoising AE's noise, dropout masks
   (family). While task.loss runs, `SliceRandom` (a TorchDispatchMode) sees every random aten
   op: one whose result has the local batch as its first dimension is drawn for the global
   batch, with the same arguments and the same generator, and the rank's slice is kept. So rank
   r gets exactly the numbers that single-process training gives its samples, and every
   generator stays in lockstep with the single-process run. Other random draws (not shaped by
   the batch) pass through unchanged and are the same on every rank. Hence a data-parallel run
   computes the single-process run's loss, up to the order of float sums; the exceptions are
   losses of batch statistics (the sparse autoencoder's KL penalty uses each rank's own batch
   mean of the code), which are per rank, as BatchNorm is without syncing.
3. **Gradients.** After `loss.backward()` the gradients are all-reduced (summed over the
   ranks, in one flat buffer, and divided by the world size). Every loss here is a mean over
   samples of equal-sized slices, so this average is the single-process gradient of the global
   batch; every rank then clips and steps the same gradient and the replicas stay equal. We
   reduce by hand rather than wrap the model in torch's DistributedDataParallel: the tasks call
   other methods than forward (the codec's lambda_of and aux_loss, the family's encode /
   posterior / decode_logits, the contractive penalty's double backward), and a DDP wrapper
   reduces only the gradients of a pass through its own forward (any other pass silently goes
   unreduced); it also needs find_unused_parameters for the codec's quantiles, which only the
   auxiliary loss trains. The hand reduction is correct for every task, whatever methods the
   loss calls. The auxiliary loss of the codec (the quantiles) depends on the parameters only,
   so it is the same on every rank and needs no reduction. What this gives up is DDP's overlap
   of communication with the backward pass, which matters for big models on many GPUs only.
4. **Stats and stopping.** One more all-reduce per step averages the logged stats over the
   ranks (so the log shows the global batch's loss, as in a single process) and carries a stop
   flag: Ctrl-C / SIGTERM on any rank stops every rank after the same step, so no rank waits
   forever in a collective.

Rank 0 alone writes: train.log, checkpoints, the exported weights, the progress bar; it alone
validates (the others wait for it in the next step's all-reduce, hence the generous timeout of
the process group). The checkpoint is the plain model's state, as in a single process, so a
single-process run resumes a data-parallel checkpoint and the other way round; with the same
global batch the resumed run continues the same batches and noise.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from ..devices import hardware, pick_device
from ..errors import UserError

TIMEOUT = timedelta(minutes=float(os.environ.get("AECLI_DIST_TIMEOUT_MIN", "60")))


def env_world() -> tuple[int, int, int] | None:
    """(rank, local_rank, world_size) when launched by torchrun with more than one process, else None."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    world = int(os.environ["WORLD_SIZE"])
    if world <= 1:
        return None
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world


def is_rank0() -> bool:
    """False in the processes of a data-parallel run that must not write files or print."""
    w = env_world()
    return w is None or w[0] == 0


@dataclass
class Single:
    """The plain single-process run, with Group's methods: each is the identity or does nothing."""

    device: torch.device
    main = True
    world = 1

    def where(self) -> dict:
        return {"hardware": hardware(self.device)}

    def local_batch(self, batch_size: int) -> int:
        return batch_size

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def slice_random(self, local: int):
        return nullcontext()

    def broadcast_(self, module: torch.nn.Module) -> None:
        pass

    def average_gradients_(self, params) -> None:
        pass

    def reduce_stats(self, stats: dict, stop: bool) -> tuple[dict, bool]:
        return stats, stop

    def close(self) -> None:
        pass


@dataclass
class Group:
    rank: int
    local_rank: int
    world: int
    device: torch.device
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0

    def where(self) -> dict:
        """A segment's hardware, processes and backend (checkpoint.Run.begin_segment)."""
        return {"hardware": f"{self.world} processes x {hardware(self.device)}, {self.backend}",
                "processes": self.world, "backend": self.backend}

    def local_batch(self, batch_size: int) -> int:
        if batch_size % self.world:
            raise UserError(f"--batch-size {batch_size} is the global batch: it must be divisible by the "
                            f"number of processes ({self.world})")
        return batch_size // self.world

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch."""
        b = batch.shape[0] // self.world
        return batch[self.rank * b : (self.rank + 1) * b]

    def slice_random(self, local: int):
        return SliceRandom(self.rank, self.world, local)

    def broadcast_(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank."""
        with torch.no_grad():
            for t in module.state_dict().values():
                dist.broadcast(t, 0)

    def average_gradients_(self, params) -> None:
        """Every rank's .grad becomes the mean over the ranks (one all-reduce per dtype). The same
        parameters have a gradient on every rank, as every rank runs the same code on the same model."""
        grads = [p.grad for p in params if p.grad is not None]
        by_dtype: dict = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for gs in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in gs])
            dist.all_reduce(flat)
            flat.div_(self.world)
            offset = 0
            for g in gs:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def reduce_stats(self, stats: dict, stop: bool) -> tuple[dict[str, float], bool]:
        """Stats averaged over the ranks, and whether any rank was asked to stop."""
        keys = list(stats)  # the same keys in the same order on every rank (same code path)
        t = torch.tensor([float(stop), *(float(stats[k]) for k in keys)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        values = (t[1:] / self.world).tolist()
        return dict(zip(keys, values)), bool(t[0].item() > 0)

    def close(self) -> None:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def setup(device_name: str) -> Group | Single:
    """Join the process group when launched by torchrun (a Single process otherwise): NCCL with
    device cuda:LOCAL_RANK when CUDA is used, gloo on CPU."""
    w = env_world()
    if w is None:
        return Single(pick_device(device_name))
    rank, local_rank, world = w
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed: data-parallel training is not available")
    if device_name in ("auto", "cuda"):
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device(device_name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"data-parallel training runs on cpu (gloo) or cuda (nccl), not {device.type}")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=TIMEOUT, **kwargs)
    return Group(rank=dist.get_rank(), local_rank=local_rank, world=dist.get_world_size(), device=device, backend=backend)


# The random aten ops whose result is a fresh tensor that `like` (their first argument) only gives
# the shape, dtype and device of; its values do not matter.
_LIKE = {"randn_like", "rand_like", "randint_like"}
_RANDOM: dict = {}  # op -> whether it draws random numbers (its tags, looked up once)


class SliceRandom(TorchDispatchMode):
    """Random draws shaped like the local batch are made for the global batch; the rank's slice is kept.

    Inside the mode, a random aten op (tag nondeterministic_seeded) that
      - fills a tensor in place (uniform_, normal_, bernoulli_, random_, exponential_, ...),
      - creates one of a given size (rand, randn, randint, ...),
      - creates one like a tensor (rand_like, randn_like, ...), or
      - is dropout (native_dropout, the fused kernel on CUDA; on CPU dropout is bernoulli_),
    and whose result's first dimension is the local batch size is run for the global batch
    (world * local) with the same arguments and generator, and slice [rank*local, (rank+1)*local)
    is returned. Ops not shaped by the batch run unchanged.
    """

    def __init__(self, rank: int, world: int, local: int):
        super().__init__()
        self.rank, self.world, self.local = rank, world, local

    def _cut(self, full: torch.Tensor) -> torch.Tensor:
        return full[self.rank * self.local : (self.rank + 1) * self.local]

    def _wide(self, shape) -> list[int]:
        return [self.local * self.world, *shape[1:]]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        random = _RANDOM.get(func)
        if random is None:
            random = _RANDOM[func] = torch.Tag.nondeterministic_seeded in func.tags
        if not random:
            return func(*args, **kwargs)
        schema = func._schema
        name = schema.name.split("::")[-1]
        first = args[0] if args else None
        if name == "native_dropout" and first.dim() and first.shape[0] == self.local:
            x, p, train = args[0], args[1], args[2] if len(args) > 2 else kwargs.get("train")
            if train is False:
                return func(*args, **kwargs)
            _, mask = func(torch.ones(self._wide(x.shape), dtype=x.dtype, device=x.device), p, train)
            mask = self._cut(mask)
            scale = 1.0 / (1.0 - p) if p < 1 else 0.0
            return x * mask * scale, mask
        if schema.is_mutable:  # in-place fill of args[0] (unless another tensor argument is batch-shaped)
            batched = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, torch.Tensor) and a.dim()
                       and a.shape[0] == self.local]
            if isinstance(first, torch.Tensor) and first.dim() and first.shape[0] == self.local and not batched:
                full = first.new_empty(self._wide(first.shape))
                func(full, *args[1:], **kwargs)
                first.copy_(self._cut(full))
                return first
            return func(*args, **kwargs)
        if name in _LIKE and isinstance(first, torch.Tensor):
            if first.dim() and first.shape[0] == self.local:
                return self._cut(func(first.new_empty(self._wide(first.shape)), *args[1:], **kwargs)).clone()
            return func(*args, **kwargs)
        names = [a.name for a in schema.arguments]
        if "size" in names:  # a factory: rand, randn, randint, normal(..., size), ...
            i = names.index("size")
            size = args[i] if i < len(args) else kwargs.get("size")
            if size is not None and len(size) and size[0] == self.local:
                if i < len(args):
                    args = (*args[:i], self._wide(size), *args[i + 1 :])
                else:
                    kwargs = {**kwargs, "size": self._wide(size)}
                return self._cut(func(*args, **kwargs)).clone()
        return func(*args, **kwargs)

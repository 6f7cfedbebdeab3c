"""Data-parallel training: `torchrun --nproc_per_node=2 -m aecli train` (gloo, 2 CPU processes) equals
single-process training with the same seed and global batch, and their checkpoints resume each other.
The processes are started by launch() below, torchrun's environment without its agent (faster here);
AECLI_TEST_TORCHRUN=1 runs the codec test through torchrun itself.

Why equality is expected and what tolerance: every rank draws the whole global batch and keeps its
slice, the task's own random draws (quality, quantisation noise, VAE noise...) are made for the global
batch and sliced (aecli/train/distributed.py), and the gradients are averaged over the ranks. So both
runs see the same samples and noise; only the order of float sums differs (half-batch convolutions,
the mean of two half-batch means). Measured after 3-4 steps: losses equal to 1e-7 relative, weights
within 1e-5 of each tensor's largest value. We allow 1e-4; a real fault is far above it (measured:
not slicing the task's noise 0.19, not averaging the gradients 0.05).
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from aecli.cli import app

from conftest import make_digits, make_training_images

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)

runner = CliRunner()
# test_train.py's TINY codec with a global batch of 4 (2 per process)
TINY = ["--channels", "8,12", "--patch", "64", "--batch-size", "4", "--holdout", "1", "--log-every", "1",
        "--ckpt-every", "100", "--val-every", "100", "--seed", "3", "--threads", "1"]
FAMILY = ["--model", "dense", "--latent-dim", "4", "--batch-size", "8", "--log-every", "1", "--seed", "1",
          "--threads", "1"]
REL = 1e-4


def train(*args):
    r = runner.invoke(app, ["train", *[str(a) for a in args]])
    assert r.exit_code == 0, r.output
    return r


def torchrun(*args, n=2):
    """`torchrun --standalone --nproc_per_node=n -m aecli train ...` (python -m torch.distributed.run is torchrun).
    The codec test uses it with AECLI_TEST_TORCHRUN=1; by default it uses launch(), the same contract without the
    agent process and with one torch import instead of three, which halves the test's time on a 2-core machine."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "aecli",
           "train", *[str(a) for a in args]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


# torchrun's contract without torchrun: one interpreter imports torch and aecli once (the slow part on a
# small machine, seconds per process), then forks one process per rank with RANK, LOCAL_RANK and WORLD_SIZE set; if a rank
# fails, the others are killed (as torchrun does) instead of waiting in a collective.
LAUNCHER = r"""
import os, signal, sys
import torch, aecli.cli, aecli.train.loop, aecli.codec.train, aecli.family.train
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: seconds
n, args = int(sys.argv[1]), sys.argv[2:]
pids = []
for rank in range(n):
    pid = os.fork()
    if pid == 0:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n))
        sys.argv = ["aecli", "train", *args]
        code = 0
        try:
            aecli.cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback; traceback.print_exc(); code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    pids.append(pid)
worst, left = 0, set(pids)
while left:
    pid, status = os.wait()
    left.discard(pid)
    code = os.waitstatus_to_exitcode(status)
    if code:
        worst = worst or 1
        for p in left:
            os.kill(p, signal.SIGKILL)
sys.exit(worst)
"""


def launch(*args, n=2):
    """n data-parallel processes of `aecli train ARGS`, as `torchrun --nproc_per_node=n -m aecli train ARGS`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    cmd = [sys.executable, "-c", LAUNCHER, str(n), *[str(a) for a in args]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def load(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def losses(state):
    return [h["loss"] for h in state["history"] if "loss" in h]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k, v in a.items():
        tol = REL * float(v.abs().max()) + 1e-7
        assert float((v - b[k]).abs().max()) <= tol, k


@pytest.fixture
def images(tmp_path, rng):
    return make_training_images(tmp_path / "imgs", rng)


@pytest.fixture
def digits(tmp_path):
    """16x16 gray images, two classes of 12."""
    return make_digits(tmp_path / "digits", 12)


def test_codec_two_processes_equal_one(tmp_path, images):
    one, two = tmp_path / "one", tmp_path / "two"
    train(images, "--out", one, "--steps", "3", *TINY)
    (torchrun if os.environ.get("AECLI_TEST_TORCHRUN") else launch)(images, "--out", two, "--steps", "3", *TINY)
    a, b = load(one), load(two)
    assert b["step"] == 3
    assert losses(b) == pytest.approx(losses(a), rel=REL) and len(losses(b)) == 3
    assert_same_weights(a["model"], b["model"])
    # the generators advanced exactly as in one process: a resume continues the same stream
    assert torch.equal(a["gen"], b["gen"]) and torch.equal(a["torch_rng"], b["torch_rng"])

    # rank 0 alone wrote: one train.log line per step, the export, the checkpoint
    assert sorted(p.name for p in two.iterdir()) == ["checkpoint.pt", "train.log", "two.json", "two.safetensors"]
    log = (two / "train.log").read_text().splitlines()
    assert [line.split()[1] for line in log if line.startswith("step ")] == ["1", "2", "3"]
    seg = b["segments"][-1]
    assert seg["processes"] == 2 and seg["backend"] == "gloo" and seg["hardware"].startswith("2 processes x ")
    meta = json.loads((two / "two.json").read_text())
    assert meta["training"]["segments"][-1]["processes"] == 2 and meta["training"]["batch_size"] == 4

    # a single process resumes the data-parallel checkpoint as it resumes its own
    train(images, "--out", one, "--steps", "4", "--resume", *TINY)
    train(images, "--out", two, "--steps", "4", "--resume", *TINY)
    a, b = load(one), load(two)
    assert losses(b) == pytest.approx(losses(a), rel=REL) and len(losses(b)) == 4
    assert_same_weights(a["model"], b["model"])
    assert [s.get("processes", 1) for s in b["segments"]] == [2, 1]


def test_family_resumed_by_two_processes_equals_one(tmp_path, digits):
    """Two single-process steps, then two data-parallel ones == four single-process steps."""
    full, mixed = tmp_path / "full", tmp_path / "mixed"
    train(digits, "--out", full, "--steps", "4", *FAMILY)
    train(digits, "--out", mixed, "--steps", "2", *FAMILY)
    launch(digits, "--out", mixed, "--steps", "4", "--resume", *FAMILY)
    a, b = load(full), load(mixed)
    assert b["step"] == 4
    assert losses(b) == pytest.approx(losses(a), rel=REL) and len(losses(b)) == 4
    assert_same_weights(a["model"], b["model"])
    assert [s.get("processes", 1) for s in b["segments"]] == [1, 2]


def test_slice_random_draws_the_global_batch():
    """Each rank's draws are its slice of the single-process draws; draws not shaped by the batch are whole."""
    from aecli.train.distributed import SliceRandom

    def draws(gen, b):
        torch.manual_seed(1)
        return [torch.randint(8, (b,), generator=gen), torch.randn(b, 3, generator=gen),
                torch.empty(b, 2).uniform_(-0.5, 0.5, generator=gen), torch.rand_like(torch.empty(b, 2, 2)),
                torch.nn.functional.dropout(torch.ones(b, 6), 0.5), *torch.native_dropout(torch.ones(b, 3), 0.5, True),
                torch.rand(5, generator=gen)]

    whole = draws(torch.Generator().manual_seed(0), 4)
    for rank in range(2):
        with SliceRandom(rank, 2, 2):
            part = draws(torch.Generator().manual_seed(0), 2)
        for w, p in zip(whole[:-1], part[:-1]):
            assert torch.equal(w[2 * rank : 2 * rank + 2], p)
        assert torch.equal(whole[-1], part[-1])

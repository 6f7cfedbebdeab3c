"""kill -9 during compress / decompress / denoise never leaves a partial file under the output name.

Outputs are written to a hidden temporary file beside the output and renamed over it
(atomic.write_output), so a killed process leaves either no output or the complete one. It
may leave the temporary file (.NAME.RANDOM.tmp): nothing can remove it after SIGKILL. These
tests kill real processes at two moments: during startup and computation, and in the middle of
writing the output, which a slow disk (fsync delayed by 0.4 s) makes easy to hit.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import format as latformat
from aecli.cli import app

from conftest import photo_like

ROOT = Path(__file__).resolve().parent.parent
SIDE = 640

# The real command line, on a slow disk: every fsync waits SLOW_FSYNC seconds first.
LAUNCHER = (
    "import os, runpy, sys, time\n"
    "_fsync = os.fsync\n"
    "def fsync(fd):\n"
    "    time.sleep(float(os.environ.get('SLOW_FSYNC', '0')))\n"
    "    _fsync(fd)\n"
    "os.fsync = fsync\n"
    "sys.argv = ['aecli'] + sys.argv[1:]\n"
    "runpy.run_module('aecli', run_name='__main__')\n"
)


def _env(slow: float) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["SLOW_FSYNC"] = str(slow)
    env["OMP_NUM_THREADS"] = "1"  # keep the load light on a shared machine
    return env


def _valid(path: Path) -> bool:
    """Complete and readable: a .lat passes its CRC, an image decodes to the full size."""
    if path.suffix == ".lat":
        latformat.unpack(path.read_bytes())
        return True
    with PILImage.open(path) as im:
        im.load()
        assert im.size == (SIDE, SIDE)
    return True


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


def _kill_when(args: list, out: Path, *, after: float | None = None, slow: float = 0.0) -> int:
    """Start `aecli ARGS`; SIGKILL it `after` seconds, or as soon as its temporary output appears."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *map(str, args)], env=_env(slow),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < 60:
            if (after is not None and time.monotonic() - start >= after) or (after is None and _temps(out)):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return proc.returncode


@pytest.fixture(scope="module")
def big(tmp_path_factory, model_dir):
    d = tmp_path_factory.mktemp("big")
    PILImage.fromarray(photo_like(SIDE, SIDE, np.random.default_rng(1))).save(d / "big.png")
    r = CliRunner().invoke(app, ["compress", str(d / "big.png"), str(d / "big.lat"), "-m",
                                 str(model_dir / "tiny-hp.safetensors")])
    assert r.exit_code == 0, r.output
    return d


COMMANDS = {
    "compress": (lambda d, out: ["compress", d / "big.png", out, "-m", "tiny-hp"], "x.lat"),
    "decompress": (lambda d, out: ["decompress", d / "big.lat", out], "x.png"),
    "denoise": (lambda d, out: ["denoise", d / "big.png", out, "-m", "tiny-dn", "--sigma", "10"], "x.png"),
}


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_kill_9_never_leaves_a_partial_output(big, tmp_path, cmd):
    make, name = COMMANDS[cmd]
    inputs = {p: p.read_bytes() for p in big.iterdir()}

    # 1. killed while it starts up or computes: no output, or (a fast machine) the complete one
    out = tmp_path / "early" / name
    code = _kill_when(make(big, out), out, after=1.0)
    assert not out.exists() or _valid(out), f"exit {code}"

    # 2. killed in the middle of writing the output
    out = tmp_path / "mid" / name
    code = _kill_when(make(big, out), out, slow=0.4)
    assert code == -signal.SIGKILL, f"the process ended by itself (exit {code}) before its output was written"
    assert not out.exists(), "a partial file under the output name"
    assert _temps(out), "the killed process was writing a temporary file"  # the known leftover

    # the stray temporary file does not get in the way of the next run
    if cmd == "compress":
        r = CliRunner().invoke(app, [str(a) for a in make(big, out)])
        assert r.exit_code == 0, r.output
        assert _valid(out)
    assert {p: p.read_bytes() for p in big.iterdir()} == inputs

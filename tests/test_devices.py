"""--device: picking and refusing devices, and what running on one changes (nothing in the file)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aecli.cli import app
from aecli.codec.api import load_codec
from aecli.devices import exact_float32, pick_device
from aecli.errors import UserError
from aecli.images.image import Image
from aecli.train.data import CropDataset
from aecli.train.loop import Diverged, finite

from conftest import photo_like

runner = CliRunner()
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")


def test_pick_device_names():
    assert pick_device("cpu") == torch.device("cpu")
    for bad in ("tpu9", "", "cuda:x"):
        with pytest.raises(UserError, match="unknown device"):
            pick_device(bad)


@no_cuda
def test_missing_gpu_is_a_user_error(tmp_path, rng):
    assert pick_device("auto").type in ("cpu", "mps")
    for name in ("cuda", "cuda:3"):
        with pytest.raises(UserError, match="no CUDA GPU"):
            pick_device(name)
    from PIL import Image as PILImage

    src = tmp_path / "a.png"
    PILImage.fromarray(photo_like(32, 32, rng)).save(src)
    r = runner.invoke(app, ["compress", str(src), str(tmp_path / "a.lat"), "-m", "tiny-hp", "--device", "cuda"])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "no CUDA GPU" in r.stderr
    r = runner.invoke(app, ["denoise", str(src), str(tmp_path / "b.png"), "--sigma", "10", "--device", "cuda:1"])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "no CUDA GPU" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_cpu_device_codec_matches_default(rng):
    """A codec loaded for an explicit device gives the default one's bytes and pixels; its
    transforms sit on that device and its outputs come back to the CPU."""
    img = Image(pixels=photo_like(70, 90, rng), alpha=None, mode="RGB", source_bits=8)
    a, b = load_codec("tiny-hp"), load_codec("tiny-hp", "cpu")
    assert a is b  # one cached model per (weights, device)
    auto = load_codec("tiny-hp", "auto")
    assert auto.device == pick_device("auto")
    from aecli import format as latformat

    data = a.compress(img, 2)
    assert auto.compress(img, 2) == data or auto.device.type != "cpu"
    out = auto.decompress(latformat.unpack(data))
    assert out.pixels.shape == (70, 90, 3) and out.pixels.dtype == np.uint8
    assert next(auto.model.parameters()).device.type == auto.device.type


def test_exact_float32_is_a_no_op_off_cuda():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled)
    with exact_float32(torch.device("cpu")):  # the CPU's settings are left alone
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled) == before
    if torch.cuda.is_available():
        with exact_float32(torch.device("cuda")):
            assert not torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.deterministic


def test_uint8_batches_are_the_float_batches(tmp_path, rng):
    from PIL import Image as PILImage

    for i in range(3):
        PILImage.fromarray(photo_like(40 + i, 50, rng)).save(tmp_path / f"{i}.png")
    data = CropDataset(tmp_path, 32)
    u8 = data.batch_u8(5, torch.Generator().manual_seed(3))
    f = data.batch(5, torch.Generator().manual_seed(3))
    assert u8.dtype == torch.uint8 and u8.shape == (5, 3, 32, 32)
    assert torch.equal(u8.float() / 255.0, f)


def test_divergence_is_caught_when_the_loop_reads_its_stats():
    finite({"loss": torch.tensor(3.0) + 1.5}, 10)  # finite: no error
    with pytest.raises(Diverged, match="by step 20; no checkpoint was written"):
        finite({"loss": torch.tensor(3.0) + torch.tensor(math.nan)}, 20)
    with pytest.raises(Diverged, match=r"last checkpoint \(ck.pt, step 4\)"):
        finite({"loss": math.inf}, 5, (Path("ck.pt"), 4))

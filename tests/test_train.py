"""Training: a tiny run end to end, exported model usable, resume equals uninterrupted."""

import json

import pytest
import torch
from typer.testing import CliRunner

from aecli.cli import app

from conftest import make_training_images

runner = CliRunner()
TINY = ["--channels", "8,12", "--patch", "64", "--batch-size", "2", "--holdout", "1", "--log-every", "1",
        "--ckpt-every", "2", "--val-every", "100", "--seed", "3", "--threads", "1"]


@pytest.fixture
def images(tmp_path, rng):
    return make_training_images(tmp_path / "imgs", rng)


def train(*args):
    return runner.invoke(app, ["train", *[str(a) for a in args]])


def test_train_export_and_use(tmp_path, images):
    out = tmp_path / "mymodel"
    r = train(images, "--out", out, "--steps", "3", *TINY)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "mymodel.json").read_text())
    assert meta["task"] == "codec" and meta["qualities"] == list(range(1, 9))
    assert meta["training"]["steps"] == 3 and meta["validation"]["estimated_rd"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    r = runner.invoke(app, ["compress", str(images / "0.png"), str(tmp_path / "x.lat"), "--model", str(out), "-Q", "8"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["decompress", str(tmp_path / "x.lat"), str(tmp_path / "x.png"), "--model", str(out)])
    assert r.exit_code == 0, r.output
    # a second run into the same folder must not silently restart
    r = train(images, "--out", out, "--steps", "3", *TINY)
    assert r.exit_code == 1 and "--resume" in r.stderr


def test_resume_matches_uninterrupted(tmp_path, images):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(images, "--out", a, "--steps", "4", *TINY).exit_code == 0
    assert train(images, "--out", b, "--steps", "2", *TINY).exit_code == 0
    r = train(images, "--out", b, "--steps", "4", "--resume", *TINY)
    assert r.exit_code == 0, r.output
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert sb["step"] == 4
    # same batches and noise; the weights agree to float rounding (kernels may sum in another order)
    for k, v in sa["model"].items():
        assert torch.allclose(v, sb["model"][k], rtol=1e-5, atol=1e-7), k
    la = [h["loss"] for h in sa["history"] if "loss" in h]
    lb = [h["loss"] for h in sb["history"] if "loss" in h]
    assert la == pytest.approx(lb, rel=1e-5)
    assert len(la) == 4


def test_resume_may_change_batch_crop_and_lr(tmp_path, images):
    out = tmp_path / "m"
    assert train(images, "--out", out, "--steps", "2", *TINY).exit_code == 0
    r = train(images, "--out", out, "--steps", "3", "--resume", "--lr", "1e-5", "--batch-size", "3", "--channels", "8,12",
              "--holdout", "1", "--threads", "1", "--log-every", "1")
    assert r.exit_code == 0, r.output
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3
    assert state["config"]["lr"] == 1e-5 and state["config"]["batch_size"] == 3 and state["config"]["patch"] == 64
    first, second = state["segments"]
    assert (first["lr"], first["batch_size"], second["lr"], second["batch_size"]) == (1e-4, 2, 1e-5, 3)
    assert "recipe change at step 2: batch_size 2 -> 3, lr 0.0001 -> 1e-05" in (out / "train.log").read_text()
    assert [g["lr"] for g in state["opt"]["param_groups"]] == [1e-5, 1e-4]  # the gains' group learns 10x faster


def test_time_limit_stops_with_a_checkpoint(tmp_path, images):
    out = tmp_path / "m"
    r = train(images, "--out", out, "--steps", "100000", "--time-limit", "0.001", *TINY)
    assert r.exit_code == 0, r.output
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 1 <= state["step"] < 100000
    meta = json.loads((out / "m.json").read_text())
    assert meta["training"]["steps"] == state["step"]
    assert "time limit of 0.001 s reached" in (out / "train.log").read_text()
    # the limit is per process: a resume with a longer step count goes on
    r = train(images, "--out", out, "--steps", str(state["step"] + 1), "--resume", *TINY)
    assert r.exit_code == 0, r.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == state["step"] + 1


def test_unreadable_training_file_is_skipped(tmp_path, images):
    (images / "broken.png").write_bytes(b"not an image")
    (images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "m"
    r = train(images, "--out", out, "--steps", "1", *TINY)
    assert r.exit_code == 0, r.output
    assert "skipping" in r.stderr and "broken.png" in r.stderr and "empty.jpg" in r.stderr
    meta = json.loads((out / "m.json").read_text())
    assert meta["training"]["unreadable_files_skipped"] == 2
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"junk")
    r = train(only_bad, "--out", tmp_path / "m2", "--steps", "1", *TINY)
    assert r.exit_code == 1 and "no readable images" in r.stderr and "Traceback" not in r.output


def test_single_quality_model(tmp_path, images):
    out = tmp_path / "q4"
    r = train(images, "--out", out, "--steps", "1", "--quality", "4", "--model", "factorized", *TINY)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "q4.json").read_text())
    assert meta["qualities"] == [4] and meta["architecture"]["kind"] == "factorized"
    assert meta["architecture"]["lambdas"] == [0.013]

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
    assert meta["task"] == "codec" and meta["qualities"] == list(range(1, 12)) and meta["default_quality"] == 8
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


def test_export_redoes_validation_from_an_older_method(tmp_path, images):
    """A checkpoint whose last validation was made the old way (likelihoods at noisy latents, no
    "method") exports fresh figures, not the stale ones."""
    from aecli.train.checkpoint import atomic_save

    out = tmp_path / "m"
    assert train(images, "--out", out, "--steps", "2", *TINY).exit_code == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    fresh = [h for h in ckpt["history"] if "val" in h][-1]
    assert fresh["method"] == "rounded"
    stale = [{"quality": r["quality"], "bpp": 123.0, "psnr": 1.0} for r in fresh["val"]]
    ckpt["history"] = [h for h in ckpt["history"] if "val" not in h] + [{"step": 2, "val": stale}]
    atomic_save(ckpt, out / "checkpoint.pt")
    r = train(images, "--out", out, "--steps", "2", "--resume", *TINY)  # no steps left: export only
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "m.json").read_text())
    assert meta["validation"]["estimated_rd"] == fresh["val"]
    assert meta["validation"]["rate"] == "code length of the rounded latents"


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
    assert meta["architecture"]["lambdas"] == [0.0018]  # the fourth of the eleven levels


def test_checkpoints_without_recorded_levels_keep_compressai_levels():
    from aecli.codec.model import COMPRESSAI_LAMBDAS, LAMBDAS, default_quality
    from aecli.codec.train import CodecTask, codec_config

    def levels(**record):  # of a checkpoint whose "config" is `record`
        return CodecTask().lambdas(codec_config({"data": "d", "out": "o", **record}))

    assert levels() == COMPRESSAI_LAMBDAS
    assert levels(quality=2) == (COMPRESSAI_LAMBDAS[1],)
    assert levels(extra={"lambdas": list(LAMBDAS)}) == LAMBDAS
    assert LAMBDAS[3:] == COMPRESSAI_LAMBDAS and len(LAMBDAS) == 11
    assert default_quality(COMPRESSAI_LAMBDAS, range(1, 9)) == 5 and default_quality(LAMBDAS, range(1, 12)) == 8


def test_extending_levels_keeps_the_old_ones(tmp_path, images):
    """New lower levels come first; the old levels code the same streams under their new numbers,
    and training the new levels' gains leaves the old gains exactly as they were."""
    from aecli import format as latformat
    from aecli import registry
    from aecli.codec import model as codec_model
    from aecli.codec.api import Codec
    from aecli.images.decode import read_image
    from aecli.train.data import CropDataset
    from scripts import extend_qualities as ext

    torch.manual_seed(5)
    old = codec_model.build({"kind": "hyperprior", "n": 8, "m": 12, "lambdas": [0.0018, 0.0035, 0.0067]})
    new = ext.extended(old, (0.0005, 0.0009, 0.0018, 0.0035, 0.0067))
    g = old.gain.detach()
    assert torch.allclose(new.gain[1], g[0] - (g[1] - g[0])) and torch.allclose(new.gain[0], g[0] - 2 * (g[1] - g[0]))
    before = {n: getattr(new, n).detach().clone() for n in ext.GAINS}
    history = ext.fine_tune(new, CropDataset(images, 64), steps=2, batch=2, lr=1e-2, added=2, seed=1, log=lambda m: None)
    assert history[-1]["step"] == 2
    for n in ext.GAINS:
        assert torch.equal(getattr(new, n)[2:], before[n][2:])  # old levels untouched
    assert not torch.equal(new.gain[:2], before["gain"][:2]) and not torch.equal(new.inv_gain[:2], before["inv_gain"][:2])
    new.eval()
    img = read_image(str(images / "0.png"))
    codecs = []
    for name, m, q in (("a", old, [1, 2, 3]), ("b", new, [1, 2, 3, 4, 5])):
        meta = {"name": name, "task": "codec", "architecture": m.config(), "qualities": q, "default_quality": 1}
        registry.save(codec_model.export_tensors(m), meta, tmp_path / f"{name}.safetensors")
        codecs.append(Codec.load(registry.resolve(str(tmp_path / f"{name}.safetensors"), "codec")))
    a, b = codecs
    for q in (1, 2, 3):
        assert latformat.unpack(a.compress(img, q)).streams == latformat.unpack(b.compress(img, q + 2)).streams


def test_widened_codec_codes_as_before_and_trains_on(tmp_path, images):
    """python -m scripts.widen_codec: wider transforms, same function (the same streams), and a run that
    `aecli train --resume` continues."""
    import subprocess
    import sys
    from pathlib import Path

    from aecli import format as latformat
    from aecli.codec.api import Codec
    from aecli import registry
    from aecli.images.decode import read_image

    out = tmp_path / "base"
    r = train(images, "--out", out, "--steps", "2", *TINY)
    assert r.exit_code == 0, r.output
    root = Path(__file__).resolve().parents[1]
    wide = tmp_path / "wide"
    p = subprocess.run([sys.executable, "-m", "scripts.widen_codec", str(out / "checkpoint.pt"),
                        "--n", "16", "--out", str(wide)], capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    meta = json.loads((wide / "wide.json").read_text())
    assert meta["architecture"]["n"] == 16 and meta["architecture"]["nh"] == 8
    assert meta["training"]["extensions"][0]["kind"] == "widen"
    a = Codec.load(registry.resolve(str(out / "base.safetensors"), "codec"))
    b = Codec.load(registry.resolve(str(wide / "wide.safetensors"), "codec"))
    img = read_image(str(images / "1.png"))
    for q in (1, 6, 11):
        assert latformat.unpack(a.compress(img, q)).streams == latformat.unpack(b.compress(img, q)).streams
    r = train(images, "--out", wide, "--steps", "4", "--resume", *TINY)
    assert r.exit_code == 0, r.output
    ckpt = torch.load(wide / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["config"]["n"] == 16 and ckpt["extensions"][0]["n"] == [8, 16]
    assert ckpt["model"]["g_a.0.weight"].shape[0] == 16 and ckpt["model"]["h_a.0.weight"].shape[0] == 8


def test_train_a_checkerboard_codec_and_fit_a_context_to_a_trained_one(tmp_path, images):
    """`aecli train --model checkerboard` trains and exports a context-model codec whose files round
    trip; python -m scripts.fit_context turns a trained hyperprior run into one without changing its
    transforms (the reconstruction is the same, the context part trains) and `--resume` goes on."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from aecli import format as latformat
    from aecli import registry
    from aecli.codec.api import Codec
    from aecli.images.decode import read_image

    out = tmp_path / "cb"
    r = train(images, "--out", out, "--steps", "2", "--model", "checkerboard", *TINY)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "cb.json").read_text())["architecture"]["kind"] == "checkerboard"
    r = runner.invoke(app, ["compress", str(images / "0.png"), str(tmp_path / "c.lat"), "--model", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["decompress", str(tmp_path / "c.lat"), str(tmp_path / "c.png"), "--model", str(out)])
    assert r.exit_code == 0, r.output

    hp = tmp_path / "hp"
    assert train(images, "--out", hp, "--steps", "2", *TINY).exit_code == 0
    root = Path(__file__).resolve().parents[1]
    ctx = tmp_path / "hpc"
    p = subprocess.run([sys.executable, "-m", "scripts.fit_context", str(hp / "checkpoint.pt"), "--out", str(ctx),
                        "--data", str(images), "--steps", "3", "--batch-size", "2", "--threads", "1"],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    before = torch.load(hp / "checkpoint.pt", weights_only=True)["model"]
    after = torch.load(ctx / "checkpoint.pt", weights_only=True)
    assert after["config"]["model"] == "checkerboard" and after["extensions"][-1]["kind"] == "context"
    assert all(torch.equal(v, after["model"][k]) for k, v in before.items())
    assert any(after["model"]["ep.4.weight"].flatten() != 0)
    a = Codec.load(registry.resolve(str(hp / "hp.safetensors"), "codec"))
    b = Codec.load(registry.resolve(str(ctx / "hpc.safetensors"), "codec"))
    img = read_image(str(images / "0.png"))
    pa = a.decompress(latformat.unpack(a.compress(img, 3, scale=8))).pixels
    pb = b.decompress(latformat.unpack(b.compress(img, 3, scale=8))).pixels
    assert np.abs(pa.astype(int) - pb.astype(int)).mean() < 1.0  # the same transforms; only rounding offsets move
    r = train(images, "--out", ctx, "--steps", "4", "--resume", *TINY)
    assert r.exit_code == 0, r.output
    assert torch.load(ctx / "checkpoint.pt", weights_only=True)["step"] == 4

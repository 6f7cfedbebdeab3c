"""Training on one's own folder, as a user sees it: the first and last lines, the default budget on a
CPU, the ETA under --time-limit, fine-tuning a codec with --init, and models found and installed."""

import json
import os

import torch
from typer.testing import CliRunner

from aecli.cli import app

from test_train import images, train  # noqa: F401 - (a fixture and a helper)

runner = CliRunner()
TINY = ["--patch", "64", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "2",
        "--val-every", "100", "--seed", "3", "--threads", "1"]


def test_first_and_last_lines_and_the_warning(tmp_path, images):
    out = tmp_path / "mymodel"
    r = train(images, "--out", out, "--steps", "2", "--channels", "8,12", *TINY)
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    first = lines[0]
    assert first.startswith("training a hyperprior codec (N=8, M=12, 11 quality levels) from scratch on 3 images")
    assert "1 held-out image for validation" in first and "cpu, 1 thread;" in first and "2 steps of 2 crops 64x64" in first
    assert f"output {out}" in first
    last = next(line for line in lines if line.startswith("model saved in"))
    assert "step 2" in last and "quality 1 " in last and "dB" in last
    assert f"aecli compress --model {out} photo.png" in last and f"aecli models install {out}" in last
    warning = next(line for line in lines if line.startswith("aecli: warning: this model trained 2 steps"))
    assert "--init hpc" in warning
    log = (out / "train.log").read_text()
    assert first in log and last in log


def test_cpu_default_budget_and_time_limit(tmp_path, images):
    from aecli.train.run import CPU_BUDGET, default_budget

    assert default_budget("cpu", 100_000, None, False)[:2] == CPU_BUDGET["scratch"]
    assert default_budget("cpu", 100_000, None, True)[:2] == CPU_BUDGET["finetune"]
    assert default_budget("cpu", 100_000, 120.0, False)[:2] == (CPU_BUDGET["scratch"][0], 120.0)
    steps, seconds = CPU_BUDGET["scratch"]
    assert seconds <= 3600 and steps < 100_000
    # no --steps: the CPU default, said in the first line; an explicit --time-limit caps it
    r = train(images, "--out", tmp_path / "m", "--channels", "8,12", "--time-limit", "1", *TINY)
    assert r.exit_code == 0, r.output
    assert f"{steps:,} steps of 2 crops 64x64 or 1 s, whichever comes first (the CPU default" in r.stderr.splitlines()[0]
    ckpt = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["time_limit"] == 1 and 1 <= ckpt["step"] < steps


def test_the_bar_ends_at_the_time_limit(tmp_path, images, monkeypatch):
    """The bar's total (hence its ETA) is the steps the time limit leaves, not --steps."""
    from contextlib import contextmanager

    from aecli.train import loop

    totals, shown = [], []

    class Bar:
        def add_task(self, name, total=None, **kw):
            shown.append(name)
            totals.append(total) if name == "train" else None
            return len(shown)

        def update(self, job, total=None, **kw):
            if total is not None:
                totals.append(total)

        def remove_task(self, job):
            shown.append("removed")

    @contextmanager
    def fake(enabled=None):
        yield Bar()

    monkeypatch.setattr(loop, "progress_bar", fake)
    r = train(images, "--out", tmp_path / "m", "--channels", "8,12", "--steps", "1000000", "--time-limit", "2", *TINY)
    assert r.exit_code == 0, r.output
    step = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)["step"]
    assert totals[0] == 1_000_000 and totals[-1] < 1_000_000 and totals[-1] <= step * 3 + 10
    assert "validating" in shown and shown[-1] == "removed"  # the validation phase has its own line


def test_finetune_a_codec_keeps_its_kind_and_levels(tmp_path, images, model_dir):
    out = tmp_path / "cb-mine"
    r = train(images, "--task", "codec", "--init", "tiny-cb", "--out", out, "--steps", "2", *TINY)
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("training a checkerboard codec (N=8, M=12, 3 quality levels) from 'tiny-cb'")
    assert "lr 3e-05" in first
    assert "warning" not in r.stderr  # a fine-tuned model is not compared with a model trained from scratch
    meta = json.loads((out / "cb-mine.json").read_text())
    src = json.loads((model_dir / "tiny-cb.json").read_text())
    assert meta["architecture"] == src["architecture"] and meta["qualities"] == [1, 2, 3]
    assert meta["training"]["init"] == "tiny-cb"
    x = tmp_path / "x.lat"
    for q in ("1", "3"):
        r = runner.invoke(app, ["compress", str(images / "0.png"), str(x), "--model", str(out), "-Q", q, "-f"])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["decompress", str(x), str(tmp_path / "x.png"), "--model", str(out), "-f"])
        assert r.exit_code == 0, r.output
    # from a codec checkpoint too; and the wrong kind or a --quality subset is a one-line error
    r = train(images, "--init", out / "checkpoint.pt", "--out", tmp_path / "again", "--steps", "1", *TINY)
    assert r.exit_code == 0, r.output
    assert "from '" in r.stderr and "checkerboard codec (N=8, M=12, 3 quality levels)" in r.stderr
    for extra, msg in ((["--model", "factorized"], "is a checkerboard codec"), (["--quality", "2"], "every quality level"),
                       (["--channels", "16,24"], "keeps the widths")):
        r = train(images, "--init", "tiny-cb", "--out", tmp_path / "bad", "--steps", "1", *extra, *TINY)
        assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, r.output


def test_finetune_a_denoiser_says_so(tmp_path, images):
    r = train(images, "--task", "denoise", "--init", "tiny-dn", "--out", tmp_path / "dn-mine", "--steps", "1", *TINY)
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("training a U-Net denoiser (widths 8,16") and "from 'tiny-dn'" in first and "lr 4e-05" in first
    assert "aecli denoise --model" in r.stderr


def test_own_models_are_found_installed_and_explained(tmp_path, images, monkeypatch, model_dir):
    runs = tmp_path / "runs"
    out = runs / "aerial"
    r = train(images, "--init", "tiny-hp", "--out", out, "--steps", "1", "--install", *TINY)
    assert r.exit_code == 0, r.output
    home = tmp_path / "home" / "models"  # $AECLI_HOME/models (conftest)
    assert (home / "aerial.safetensors").exists() and "installed as 'aerial'" in r.stderr
    x = tmp_path / "x.lat"
    assert runner.invoke(app, ["compress", str(images / "0.png"), str(x), "--model", str(out)]).exit_code == 0
    # installed: found by name
    r = runner.invoke(app, ["decompress", str(x), str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    # not installed: the error says which fixes it
    for p in home.iterdir():
        p.unlink()
    r = runner.invoke(app, ["decompress", str(x), str(tmp_path / "b.png")])
    assert r.exit_code == 1 and "not installed" in r.stderr and "aecli models install" in r.stderr
    assert "AECLI_MODEL_PATH" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # AECLI_MODEL_PATH: a list of folders that hold model folders (a model folder itself still works)
    for value in (os.pathsep.join([str(model_dir), str(runs)]), str(out)):
        monkeypatch.setenv("AECLI_MODEL_PATH", value)
        r = runner.invoke(app, ["decompress", str(x), str(tmp_path / "c.png"), "-f"])
        assert r.exit_code == 0, (value, r.output)
    # aecli models install DIR; a second install of the same weights is fine; other weights need --force
    monkeypatch.setenv("AECLI_MODEL_PATH", str(model_dir))
    r = runner.invoke(app, ["models", "install", str(out)])
    assert r.exit_code == 0 and "installed model 'aerial'" in r.stderr, r.output
    assert runner.invoke(app, ["models", "install", str(out)]).exit_code == 0
    r = runner.invoke(app, ["models"])
    assert "aerial" in r.stdout
    other = tmp_path / "other" / "aerial"
    assert train(images, "--init", "tiny-hp", "--out", other, "--steps", "1", "--seed", "9", *TINY[:-4]).exit_code == 0
    r = runner.invoke(app, ["models", "install", str(other)])
    assert r.exit_code == 1 and "--force" in r.stderr
    assert runner.invoke(app, ["models", "install", str(other), "--force"]).exit_code == 0
    # a missing folder, an unknown action; a bare name never means a folder of the current directory
    r = runner.invoke(app, ["models", "install", str(model_dir / "nothing")])
    assert r.exit_code == 1 and "not found" in r.stderr
    r = runner.invoke(app, ["models", "frobnicate"])
    assert r.exit_code == 1 and "unknown action" in r.stderr
    monkeypatch.chdir(runs)
    r = runner.invoke(app, ["compress", str(images / "0.png"), str(tmp_path / "y.lat"), "--model", "aerial2"])
    assert r.exit_code == 1 and "not found" in r.stderr


def test_steps_and_epochs_of_zero_are_one_line_errors(tmp_path, images):
    for task, extra in (("codec", []), ("autoencoder", ["--model", "dense"])):
        r = train(images, "--task", task, *extra, "--out", tmp_path / task, "--steps", "0")
        assert r.exit_code == 1 and r.stderr.strip() == "aecli: error: --steps must be at least 1", r.output
        assert not (tmp_path / task).exists()
    r = train(images, "--task", "autoencoder", "--model", "dense", "--out", tmp_path / "e", "--epochs", "0")
    assert r.exit_code == 1 and r.stderr.strip() == "aecli: error: --epochs must be at least 1"
    r = train(images, "--task", "codec", "--out", tmp_path / "c", "--latent-dim", "4")
    assert r.exit_code == 1 and r.stderr.startswith("aecli: error: --latent-dim: only for the autoencoder family")


def test_resumed_epochs_count_the_runs_own_batches(tmp_path):
    from conftest import make_digits

    make_digits(tmp_path / "digits", per_class=6)
    out = tmp_path / "ae"
    args = ["--task", "autoencoder", "--model", "dense", "--out", out, "--seed", "0", "--threads", "1"]
    assert train(tmp_path / "digits", *args, "--epochs", "2", "--batch-size", "4").exit_code == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)["config"]["steps"]
    r = train(tmp_path / "digits", *args, "--epochs", "4", "--resume")
    assert r.exit_code == 0, r.output
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["batch_size"] == 4 and state["config"]["steps"] == 2 * first

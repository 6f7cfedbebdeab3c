"""The autoencoder family: every kind trains, saves, loads; embed, score, reconstruct, sample; errors."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli.cli import app
from aecli.family import api
from aecli.family import models as fm

from conftest import make_digits

runner = CliRunner()
KINDS = ["dense", "conv", "vae", "sparse", "contractive", "denoising"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Two classes of 16x16 gray 'digits': a vertical bar and a horizontal bar, 20 each."""
    return make_digits(tmp_path_factory.mktemp("digits"), 20)


def train(*args):
    return runner.invoke(app, ["train", *[str(a) for a in args]])


def fit(digits, out, kind, *extra, epochs="2"):
    r = train(digits, "--model", kind, "--latent-dim", "4", "--epochs", epochs, "--batch-size", "8", "--out", out,
              "--threads", "1", *extra)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("fam")
    return {k: fit(digits, root / f"m-{k}", k) for k in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_trains_saves_and_loads(trained, kind):
    out = trained[kind]
    meta = json.loads((out / f"{out.name}.json").read_text())
    assert meta["task"] == "autoencoder" and meta["architecture"]["kind"] == kind
    assert meta["architecture"]["shape"] == [1, 16, 16] and meta["architecture"]["latent"] == 4
    assert meta["training"]["train_images"] == 36 and meta["training"]["val_images"] == 4
    assert meta["training"]["steps"] == 10  # 2 epochs of ceil(36 / 8) batches
    assert meta["validation"]["loss"] > 0 and meta["anomaly"]["threshold"] > 0
    assert set(meta["labels"]) == {"bar", "dash"}
    if kind == "vae":
        assert {"recon", "kl", "elbo"} <= set(meta["validation"])
    # the exported weights are the checkpoint's weights
    m = api.load(str(out))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    for k, v in m.model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k


def test_training_is_reproducible_and_resumable(digits, tmp_path):
    a = fit(digits, tmp_path / "a", "dense", epochs="4")
    b = fit(digits, tmp_path / "b", "dense", epochs="2")
    r = train(digits, "--model", "dense", "--latent-dim", "4", "--epochs", "4", "--batch-size", "8", "--out", tmp_path / "b",
              "--threads", "1", "--resume")
    assert r.exit_code == 0, r.output
    wa = api.load(str(a)).model.state_dict()
    wb = api.load(str(b)).model.state_dict()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_seed_keras_example_architecture(digits, tmp_path):
    """--model dense with no --hidden is the seed's 784-64-784 shape: one Linear each way, relu code, sigmoid out."""
    out = fit(digits, tmp_path / "k", "dense", "--loss", "bce", "--optimizer", "adam", epochs="1")
    m = api.load(str(out)).model
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert sorted(tuple(l.weight.shape) for l in linears) == [(4, 256), (256, 4)]


def test_options_reach_the_model(digits, tmp_path):
    out = fit(digits, tmp_path / "o", "sparse", "--sparsity", "kl", "--hidden", "32", "--dropout", "0.1", "--l2", "1e-4",
              "--optimizer", "rmsprop", "--loss", "mse", "--image-size", "12", epochs="1")
    meta = json.loads((out / "o.json").read_text())
    arch, obj = meta["architecture"], meta["objective"]
    assert arch["shape"] == [1, 12, 12] and arch["hidden"] == [32] and arch["code_activation"] == "sigmoid"
    assert obj["sparsity"] == "kl" and obj["optimizer"] == "rmsprop" and obj["loss"] == "mse" and obj["l2"] == 1e-4


def test_contractive_closed_form_equals_autograd():
    torch.manual_seed(0)
    m = fm.build(fm.default_config("contractive", (1, 6, 6), 5))
    x = torch.rand(3, 1, 6, 6)
    assert torch.allclose(fm.contractive_penalty(m, x), fm.jacobian_frobenius2(m, x), rtol=1e-5, atol=1e-7)


def test_vae_kl_term():
    mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    assert torch.equal(fm.kl_normal(mu, logvar), torch.zeros(2))
    mu = torch.ones(1, 3)
    assert torch.allclose(fm.kl_normal(mu, torch.zeros(1, 3)), torch.tensor([1.5]))


def test_conv_shapes_round_trip_odd_sizes():
    for h, w in ((28, 28), (13, 17), (5, 9)):
        m = fm.build(fm.default_config("conv", (3, h, w), 8))
        assert m(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def test_embed_outputs(trained, digits, tmp_path):
    model = str(trained["dense"])
    r = runner.invoke(app, ["embed", str(digits), "--model", model, "-o", str(tmp_path / "c.npy"), "--plot", str(tmp_path / "map.png")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "c.npy").shape == (40, 4)
    with PILImage.open(tmp_path / "map.png") as im:
        assert im.format == "PNG" and im.width > 400
    r = runner.invoke(app, ["embed", str(digits), "--model", model, "-o", str(tmp_path / "c.npz")])
    z = np.load(tmp_path / "c.npz")
    assert z["codes"].shape == (40, 4) and list(z["labels"][:1]) == ["bar"] and z["paths"][0].endswith("00.png")
    r = runner.invoke(app, ["embed", str(digits), "--model", model, "-q"])  # CSV on stdout
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["path", "label", "z0", "z1", "z2", "z3"] and len(rows) == 41
    codes = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    assert np.allclose(codes, np.load(tmp_path / "c.npy"), atol=1e-5)


def test_score_csv_and_threshold(trained, digits):
    model = str(trained["conv"])
    r = runner.invoke(app, ["score", str(digits), "--model", model, "-q"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 40 and set(rows[0]) == {"path", "score", "anomaly"}
    assert all(float(row["score"]) >= 0 for row in rows)
    r = runner.invoke(app, ["score", str(digits), "--model", model, "-q", "--threshold", "0"])
    assert {row["anomaly"] for row in csv.DictReader(io.StringIO(r.stdout))} == {"1"}
    r = runner.invoke(app, ["score", str(digits), "--model", model, "-q", "--threshold", "1e9"])
    assert {row["anomaly"] for row in csv.DictReader(io.StringIO(r.stdout))} == {"0"}


def test_anomalies_score_higher(digits, tmp_path):
    """Images unlike the training data get higher scores than the training data, and the calibrated
    threshold flags them."""
    out = fit(digits, tmp_path / "long", "dense", "--lr", "0.01", "--hidden", "32", epochs="60")
    odd = tmp_path / "odd"
    odd.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        PILImage.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8)).save(odd / f"{i}.png")
    m = api.load(str(out))
    from aecli.family.data import load_folder

    normal = api.scores(m.model, load_folder(digits, m.shape, quiet=True).floats(), pool=m.pool)
    weird = api.scores(m.model, load_folder(odd, m.shape, quiet=True).floats(), pool=m.pool)
    assert weird.min() > 3 * np.median(normal)
    assert m.pool == 2  # the default score
    assert (weird > m.threshold).all() and (normal <= m.threshold).mean() >= 0.9


def test_reconstruct_and_sample_pictures(trained, digits, tmp_path):
    r = runner.invoke(app, ["reconstruct", str(digits), "--model", str(trained["conv"]), "-o", str(tmp_path / "r.png"),
                            "-n", "6", "--cols", "3"])
    assert r.exit_code == 0, r.output
    with PILImage.open(tmp_path / "r.png") as im:  # 4 rows x 3 columns of 64-pixel tiles with 2-pixel gutters
        assert im.size == (3 * 66 + 2, 4 * 66 + 2)
    r = runner.invoke(app, ["sample", "--model", str(trained["vae"]), "-n", "9", "-o", str(tmp_path / "s.png")])
    assert r.exit_code == 0, r.output
    with PILImage.open(tmp_path / "s.png") as im:
        assert im.size == (3 * 66 + 2, 3 * 66 + 2)
    a, b = digits / "bar" / "00.png", digits / "dash" / "00.png"
    r = runner.invoke(app, ["sample", "--model", str(trained["vae"]), "-o", str(tmp_path / "i.png"), "--interpolate",
                            str(a), str(b), "--steps", "5"])
    assert r.exit_code == 0, r.output
    with PILImage.open(tmp_path / "i.png") as im:
        assert im.size == (5 * 66 + 2, 66 + 2)


def test_score_pool_averages_the_residual():
    """pool 1 is the per-pixel MSE; pool 2 the MSE of the residual's 2x2 block means."""
    class Zero(torch.nn.Module):  # reconstructs everything as black
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros_like(x)

    x = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert api.scores(Zero(), x, pool=1).tolist() == [0.5]
    assert api.scores(Zero(), x, pool=2).tolist() == [0.25]


def test_sampling_is_seeded(trained):
    m = api.load(str(trained["vae"])).model
    assert torch.equal(api.sample(m, 4, seed=7), api.sample(m, 4, seed=7))
    assert not torch.equal(api.sample(m, 4, seed=7), api.sample(m, 4, seed=8))


def test_models_lists_family_models(trained, monkeypatch):
    monkeypatch.setenv("AECLI_MODEL_PATH", str(trained["vae"]))
    r = runner.invoke(app, ["models", "--json"])
    rows = json.loads(r.stdout)
    assert any(row["name"] == "m-vae" and row["task"] == "autoencoder" and row["kind"] == "vae" for row in rows)


@pytest.mark.parametrize("args, message", [
    (["sample", "--model", "{dense}", "-o", "{tmp}/x.png"], "sampling needs a vae model"),
    (["embed", "{tmp}/missing", "--model", "{dense}"], "not found"),
    (["embed", "{digits}", "--model", "{tmp}/nomodel"], "not found"),
    (["embed", "{digits}", "--model", "tiny-hp"], "is a codec model, not a autoencoder model"),
    (["embed", "{digits}", "--model", "{dense}", "-o", "{tmp}/codes.txt"], ".npy, .npz or .csv"),
    (["reconstruct", "{digits}/bar/00.png", "--model", "{dense}", "-o", "{digits}/bar/00.png"], "refusing to overwrite"),
    (["embed", "{digits}", "--model", "{dense}", "--plot", "{digits}/bar/00.png"], "refusing to overwrite"),
    (["train", "{digits}", "--model", "dense", "--out", "{tmp}/x", "--loss", "l7"], "--loss must be bce or mse"),
    (["train", "{digits}", "--model", "dense", "--out", "{tmp}/x", "--sigma-range", "0,5"], "not options of the autoencoder"),
    (["train", "{digits}", "--model", "hyperprior", "--out", "{tmp}/x", "--latent-dim", "3"], "only for the autoencoder"),
    (["train", "{digits}", "--model", "wavelet", "--out", "{tmp}/x"], "unknown model 'wavelet'"),
    (["reconstruct", "{digits}", "--model", "{dense}", "-o", "{tmp}/r.xyz"], "unknown output image extension"),
])
def test_errors_are_one_line(trained, digits, tmp_path, args, message):
    fill = {"dense": trained["dense"], "tmp": tmp_path, "digits": digits}
    before = (digits / "bar" / "00.png").read_bytes()
    r = runner.invoke(app, [a.format(**fill) for a in args])
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecli: error:") and message in lines[0], r.stderr
    assert (digits / "bar" / "00.png").read_bytes() == before


def test_bad_image_in_folder_is_skipped(trained, digits, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.png").write_bytes(b"not a png")
    PILImage.open(digits / "bar" / "00.png").save(mixed / "ok.png")
    r = runner.invoke(app, ["score", str(mixed), "--model", str(trained["dense"])])
    assert r.exit_code == 1  # a file failed
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["path"].split("/")[-1] for row in rows] == ["ok.png"]
    assert "broken.png" in r.stderr

"""The bundled weights: present, intact, documented, and working from any folder."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from aecli import format as latformat
from aecli import registry
from aecli.codec import api
from aecli.images.decode import read_image
from conftest import run_together

ROOT = Path(__file__).resolve().parent.parent


def test_bundled_codec_metadata():
    models = {m.name: m for m in registry.bundled()}
    assert registry.DEFAULTS["codec"] in models, "the default codec's weights and JSON must ship"
    for name in ("hp", "hpc"):
        assert name in models, f"weights/{name}.safetensors + {name}.json must ship"
        m = models[name]
        assert m.task == "codec" and len(m.meta["qualities"]) >= 6
        assert registry.fingerprint_of(m.weights) == m.meta["fingerprint"]
        t = m.meta["training"]
        for key in ("steps", "hardware", "data", "seconds", "batch_size", "patch", "seed"):
            assert key in t, key
        assert "CBSD432" in t["data"]
        assert m.meta["validation"]["estimated_rd"]
    assert models["hpc"].meta["architecture"]["kind"] == "checkerboard"
    assert models["hpc"].meta["training"]["extensions"][-1]["kind"] == "context"
    total = sum(p.stat().st_size for p in (ROOT / "weights").iterdir() if p.is_file())
    assert total < 150 * 2**20


def test_bundled_codec_round_trip_from_another_folder(tmp_path):
    src = read_image(ROOT / "samples" / "kodim23.png")
    crop = src.pixels[100:196, 200:328]
    from PIL import Image as P

    P.fromarray(crop).save(tmp_path / "crop.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "aecli"]
    r = subprocess.run(cmd + ["compress", "crop.png", "crop.lat", "-Q", "8"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cmd + ["decompress", "crop.lat", "back.png"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lat = latformat.unpack((tmp_path / "crop.lat").read_bytes())
    assert lat.model == registry.DEFAULTS["codec"] and lat.quality == 8
    back = read_image(tmp_path / "back.png").pixels
    mse = np.mean((back.astype(float) - crop.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 20  # a real reconstruction, not noise


def test_bundled_codec_picks_the_coding_scale_per_image(tmp_path):
    """On a smooth crop the bundled model keeps the image's own size at quality 8 and codes it
    at 11/8 at quality 11, where that lifts PSNR by over 1 dB at a lower rate-distortion cost;
    `info` reports the coded size."""
    from aecli.codec import levels
    from aecli.inspection import lat_info

    codec = api.load_codec("hp")
    img = read_image(ROOT / "samples" / "kodim23.png")
    crop = type(img)(pixels=np.ascontiguousarray(img.pixels[100:228, 200:392]), alpha=None, mode="RGB", source_bits=8)
    x = crop.pixels.astype(float)

    def coded(q, scale=None):
        data = codec.compress(crop, q, scale=scale)
        back = codec.decompress(latformat.unpack(data)).pixels.astype(float)
        return latformat.unpack(data).scale, len(data), 10 * np.log10(255**2 / np.mean((back - x) ** 2)), data

    assert coded(8)[0] == 8
    s11, n11, p11, data = coded(11)
    _, n_plain, p_plain, _ = coded(11, scale=8)
    assert s11 == levels.SCALED and p11 > p_plain + 1.0
    lam, pixels = codec.model.lambdas[codec.index_of(11)], x.shape[0] * x.shape[1]

    def cost(n, p):  # lambda x 255^2 x MSE + bpp, with MSE on [0, 1]
        return lam * 255**2 * 10 ** (-p / 10) + 8 * n / pixels

    assert cost(n11, p11) < cost(n_plain, p_plain)
    (tmp_path / "c.lat").write_bytes(data)
    d = lat_info(str(tmp_path / "c.lat"))
    assert (d["coded_width"], d["coded_height"], d["coded_scale"], d["version"]) == (264, 176, 1.375, 2)


def test_bundled_denoiser_metadata():
    models = {m.name: m for m in registry.bundled()}
    assert "dn" in models, "weights/dn.safetensors + dn.json must ship"
    m = models["dn"]
    assert m.task == "denoise" and registry.fingerprint_of(m.weights) == m.meta["fingerprint"]
    t = m.meta["training"]
    for key in ("steps", "hardware", "data", "seconds", "batch_size", "patch", "seed"):
        assert key in t, key
    assert "CBSD432" in t["data"]
    assert {row["sigma"] for row in m.meta["validation"]["psnr"]} == {15, 25, 50}


def test_bundled_denoiser_cleans_from_another_folder(tmp_path):
    """`aecli noise` then `aecli denoise` (blind, default model) gains several dB on a sample crop."""
    src = read_image(ROOT / "samples" / "kodim23.png")
    crop = src.pixels[100:228, 200:392]
    from PIL import Image as P

    P.fromarray(crop).save(tmp_path / "clean.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("AECLI_MODEL_PATH", None)
    cmd = [sys.executable, "-m", "aecli"]
    r = subprocess.run(cmd + ["noise", "clean.png", "noisy.png", "--sigma", "25", "--seed", "1"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cmd + ["denoise", "noisy.png", "out.png"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def psnr(a):
        mse = np.mean((read_image(tmp_path / a).pixels.astype(float) - crop.astype(float)) ** 2)
        return 10 * np.log10(255**2 / mse)

    assert psnr("out.png") > psnr("noisy.png") + 6


def test_bundled_family_metadata():
    """The family's commands work without training: a dense autoencoder and a VAE ship, trained on
    the FashionMNIST training images by scripts/train_family.sh, with their record."""
    models = {m.name: m for m in registry.bundled()}
    for name, kind in (("fashion-ae", "dense"), ("fashion-vae", "vae")):
        assert name in models, f"weights/{name}.safetensors + {name}.json must ship"
        m = models[name]
        assert m.task == "autoencoder" and m.meta["architecture"]["kind"] == kind
        assert m.meta["architecture"]["shape"] == [1, 28, 28]
        assert registry.fingerprint_of(m.weights) == m.meta["fingerprint"]
        t = m.meta["training"]
        for key in ("steps", "hardware", "data", "seconds", "batch_size", "seed", "val_images"):
            assert key in t, key
        assert "fmnist/train" in t["data"] and t["train_images"] == 54000 and t["val_images"] == 6000
        assert m.meta["validation"]["recon"] > 0 and m.meta["anomaly"]["threshold"] > 0
    assert registry.DEFAULTS["autoencoder"] == "fashion-ae" and registry.SAMPLER == "fashion-vae"


def test_bundled_family_commands_from_another_folder(tmp_path):
    """embed, score, reconstruct and sample with no --model use the bundled models: a photo is
    an anomaly for a model of clothing pictures, an empty black frame is not."""
    from PIL import Image as P

    imgs, other = tmp_path / "imgs", tmp_path / "other"
    imgs.mkdir()
    other.mkdir()
    P.open(ROOT / "samples" / "kodim23.png").save(imgs / "photo.png")
    P.new("L", (28, 28), 0).save(imgs / "blank.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("AECLI_MODEL_PATH", None)

    def run(*commands):  # (arguments, working folder) each, side by side
        done = run_together(*[([sys.executable, "-m", "aecli", *args], dict(cwd=cwd, env=env, capture_output=True, text=True))
                              for args, cwd in commands])
        for r in done:
            assert r.returncode == 0, r.stderr
        return done

    embedded, scored = run((["embed", "photo.png"], imgs), (["score", "."], imgs))
    rows = list(csv.DictReader(io.StringIO(embedded.stdout)))
    assert len(rows) == 1 and len([k for k in rows[0] if k.startswith("z")]) == 32
    scores = {Path(row["path"]).name: row for row in csv.DictReader(io.StringIO(scored.stdout))}
    assert scores["photo.png"]["anomaly"] == "1" and scores["blank.png"]["anomaly"] == "0"
    # the sample is written in another folder, out of the way of the folder (and subfolders) reconstruct reads
    reconstructed, sampled = run((["reconstruct", ".", "-o", "r.png"], imgs), (["sample", "-n", "4", "-o", "s.png"], other))
    assert "fashion-ae" in reconstructed.stderr
    assert "fashion-vae" in sampled.stderr
    with P.open(other / "s.png") as im:  # 2 x 2 samples of 28x28 shown at 56 pixels, 2-pixel gutters
        assert im.size == (2 * 58 + 2, 2 * 58 + 2) and im.mode == "L"

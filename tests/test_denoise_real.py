"""The real-noise denoiser: degradations, the noise-level estimator, --strength, pairs, --init."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli.cli import app
from aecli.denoise import degrade
from aecli.denoise import model as dn_model
from aecli.denoise.api import load_denoiser
from aecli.denoise.noise import parse_strength
from aecli.errors import UserError
from aecli.train.data import PairDataset, find_pairs
from aecli.train.init import load_into

from conftest import photo_like

runner = CliRunner()


def _batch(rng, b=4, side=32):
    return torch.from_numpy(np.stack([photo_like(side, side, rng) for _ in range(b)])).permute(0, 3, 1, 2).float() / 255


def test_degrade_is_reproducible_and_8bit(rng):
    x = _batch(rng)
    a = degrade.degrade(x, torch.Generator().manual_seed(5))
    b = degrade.degrade(x, torch.Generator().manual_seed(5))
    c = degrade.degrade(x, torch.Generator().manual_seed(6))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a[1], c[1])
    target, noisy, nmap = a
    assert target.shape == noisy.shape == x.shape and nmap.shape == (4, 1, 32, 32)
    assert torch.equal(noisy, torch.round(noisy * 255) / 255) and noisy.min() >= 0 and noisy.max() <= 1
    assert (nmap >= 0).all()


def test_degrade_branches():
    x = torch.full((2, 3, 16, 16), 0.5)
    target, noisy, nmap = degrade.degrade(x, torch.Generator().manual_seed(0), {"p_gauss": 0.0, "p_clean": 1.0})
    assert torch.equal(target, x) and torch.allclose(noisy, torch.round(x * 255) / 255) and nmap.max() < 3e-3  # (8-bit rounding only)
    target, noisy, nmap = degrade.degrade(x, torch.Generator().manual_seed(0),
                                          {"p_gauss": 1.0, "p_clean": 0.0, "gauss_max": 50.0})
    assert torch.equal(target, x)
    assert torch.allclose(nmap.mean(dim=(1, 2, 3)), (noisy - target).pow(2).mean(dim=(1, 2, 3)).sqrt(), rtol=0.3)


def test_noise_map_of_white_noise_is_its_sigma():
    g = torch.Generator().manual_seed(1)
    x = torch.full((1, 3, 64, 64), 0.5)
    y = x + 0.04 * torch.randn(x.shape, generator=g)
    m = degrade.noise_map(y, x)
    assert abs(float(m.mean()) - 0.04) < 0.004


def test_jpeg_matches_pillow(rng):
    px = photo_like(48, 64, rng)
    buf = io.BytesIO()
    PILImage.fromarray(px).save(buf, "JPEG", quality=75)
    theirs = np.asarray(PILImage.open(buf)).astype(float)
    ours = degrade.jpeg(torch.from_numpy(px).permute(2, 0, 1)[None].float() / 255, torch.tensor([75.0]))
    ours = ours[0].permute(1, 2, 0).numpy() * 255
    err_theirs = np.mean((theirs - px) ** 2)
    err_ours = np.mean((ours - px) ** 2)
    assert abs(err_ours - err_theirs) < 0.25 * err_theirs  # the same quantisation, up to the decoders' rounding
    assert np.mean((ours - theirs) ** 2) < 0.5 * err_theirs


def test_bayer_demosaic_interpolates_each_plane():
    m = degrade.bayer_masks(4, 4, "cpu")
    assert m.sum(dim=1).eq(1).all() and m[0, 1].sum() == 8
    flat = degrade.demosaic_bilinear(torch.ones(1, 3, 8, 8) * degrade.bayer_masks(8, 8, "cpu"))
    assert torch.allclose(flat, torch.ones_like(flat))  # a flat field stays flat


def test_estimator_model_config_and_bounds():
    m = dn_model.build({"widths": [8, 16], "blocks": 1, "estimator": {"widths": [4, 8], "layers": 1}})
    assert m.blind and m.config()["estimator"] == {"widths": [4, 8], "layers": 1}
    assert dn_model.build(m.config()).config() == m.config()
    y = torch.rand(1, 3, 16, 16)
    est = m.estimate(y)
    assert est.shape == (1, 1, 16, 16) and (est > 0).all()
    assert torch.allclose(m(y), m(y, est))  # blind: the map is the estimator's
    for bad in ({"widths": [4]}, {"widths": [4, 999]}, {"layers": 99}, [4, 8]):
        with pytest.raises(ValueError):
            dn_model.check({"widths": [8, 16], "estimator": bad})
    with pytest.raises(ValueError):
        dn_model.check({"widths": [8, 16], "noise_map": False, "estimator": {"widths": [4, 8]}})


def test_parse_strength():
    assert parse_strength("strong") == 1.5 and parse_strength("0.3") == 0.3 and parse_strength(0) == 0.0
    for bad in ("nan", "-1", "9", "loud", None):
        with pytest.raises(UserError):
            parse_strength(bad)


def test_blind_model_strength_and_report(rng):
    den = load_denoiser("tiny-dn-real")
    noisy = photo_like(40, 48, rng)
    full, level = den.denoise_array(noisy)
    none, _ = den.denoise_array(noisy, strength=0.0)
    more, _ = den.denoise_array(noisy, strength=3.0)
    assert level.how == "map" and level.sigma is None and "noise map estimated" in level.summary()
    assert not np.array_equal(full, none) and not np.array_equal(full, more)
    given, g = den.denoise_array(noisy, 10)  # a given sigma still works, as a uniform map
    assert g.how == "given" and g.sigma == 10.0 and given.shape == noisy.shape


def _write_png(path, px):
    PILImage.fromarray(px).save(path)


def test_cli_default_model_follows_sigma(tmp_path, rng, monkeypatch):
    from aecli.denoise import api

    monkeypatch.setattr(api, "BLIND_DEFAULT", "tiny-dn-real")
    monkeypatch.setitem(api.registry.DEFAULTS, "denoise", "tiny-dn")
    src = tmp_path / "n.png"
    _write_png(src, photo_like(24, 32, rng))
    r = runner.invoke(app, ["denoise", str(src), str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    assert "model tiny-dn-real" in r.output and "noise map estimated" in r.output
    r = runner.invoke(app, ["denoise", str(src), str(tmp_path / "b.png"), "--sigma", "12", "--strength", "light"])
    assert r.exit_code == 0, r.output
    assert r.output.rstrip().endswith("model tiny-dn") and "sigma 12.0 (given) x0.6" in r.output
    r = runner.invoke(app, ["denoise", str(src), str(tmp_path / "c.png"), "--strength", "lots"])
    assert r.exit_code != 0 and "--strength must be" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "c.png").exists()


def test_find_pairs_both_conventions(tmp_path, rng):
    px = photo_like(20, 20, rng)
    for sub in ("noisy", "clean"):
        (tmp_path / "a" / sub / "x").mkdir(parents=True)
        _write_png(tmp_path / "a" / sub / "x" / "1.png", px)
    _write_png(tmp_path / "a" / "noisy" / "2.png", px)  # no clean twin: not a pair
    assert [p.name for p, _ in find_pairs(tmp_path / "a")] == ["1.png"]
    (tmp_path / "b").mkdir()
    for name in ("k_noisy.png", "k_clean.png", "m_real.png", "m_mean.png", "lonely_noisy.png", "plain.png"):
        _write_png(tmp_path / "b" / name, px)
    got = sorted((n.name, c.name) for n, c in find_pairs(tmp_path / "b"))
    assert got == [("k_noisy.png", "k_clean.png"), ("m_real.png", "m_mean.png")]
    assert find_pairs(tmp_path / "a" / "clean") == []


def test_pair_dataset_crops_are_aligned(tmp_path, rng):
    clean = photo_like(30, 40, rng)
    _write_png(tmp_path / "p_clean.png", clean)
    _write_png(tmp_path / "p_noisy.png", 255 - clean)  # a pair whose halves are tied pixel by pixel
    _write_png(tmp_path / "q_clean.png", clean[:20, :20])
    _write_png(tmp_path / "q_noisy.png", clean)  # sizes differ: skipped with a warning
    ds = PairDataset(tmp_path, 16)
    assert len(ds) == 1 and len(ds.skipped) == 1
    b = ds.batch_u8(6, torch.Generator().manual_seed(0)).int()
    assert b.shape == (6, 6, 16, 16) and torch.equal(b[:, :3], 255 - b[:, 3:])


def test_init_copies_what_fits():
    src = dn_model.build({"widths": [8, 16], "blocks": 1})
    dst = dn_model.build({"widths": [8, 16], "blocks": 1, "estimator": {"widths": [4, 8], "layers": 1}})
    whole, part, left = load_into(dst, src.state_dict())
    assert part == 0 and whole == len(src.state_dict()) and all(k.startswith("estimator.") for k in left)
    assert torch.equal(dst.tail.weight, src.tail.weight)
    gray = dn_model.build({"widths": [8, 16], "blocks": 1, "in_ch": 1})  # head: 2 input channels instead of 4
    whole, part, left = load_into(dst, gray.state_dict())
    assert part == 1 and torch.equal(dst.head.weight[:, :2], gray.head.weight[:, :2]) and dst.head.weight[:, 2:].abs().sum() == 0


def test_train_real_noise_pairs_and_init(tmp_path, rng):
    data = tmp_path / "pairs"
    data.mkdir()
    for i in range(3):
        clean = photo_like(40, 40, rng)
        noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
        _write_png(data / f"{i}_clean.png", clean)
        _write_png(data / f"{i}_noisy.png", noisy)
    out = tmp_path / "mine"
    # --init alone: the architecture and the real-noise recipe follow the model it starts from
    r = runner.invoke(app, ["train", str(data), "--task", "denoise", "--init", "tiny-dn-real", "--out", str(out),
                            "--steps", "2", "--batch-size", "2", "--patch", "32", "--holdout", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "mine.json").read_text())
    assert meta["architecture"]["estimator"] == {"widths": [4, 8], "layers": 1} and meta["architecture"]["widths"] == [8, 16]
    assert meta["noise"]["kind"] == "real" and meta["noise"]["pairs"] == 3
    assert meta["validation"]["psnr"][0]["noise"] == "pairs"
    assert meta["training"]["init"] == "tiny-dn-real"
    log = (out / "train.log").read_text()
    assert "initialised from model 'tiny-dn-real'" in log and ", 0 new" in log  # every tensor fitted
    # a model started from another keeps its lineage: the source's own training record
    r = runner.invoke(app, ["train", str(data), "--task", "denoise", "--init", str(out), "--out", str(tmp_path / "next"),
                            "--steps", "1", "--batch-size", "2", "--patch", "32", "--holdout", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    after = json.loads((tmp_path / "next" / "next.json").read_text())["training"]
    assert after["init_training"] == meta["training"] and after["init_training"]["steps"] == 2


def test_train_option_errors(tmp_path, rng):
    (tmp_path / "d").mkdir()
    _write_png(tmp_path / "d" / "a.png", photo_like(40, 40, rng))
    for args, msg in ((["--task", "codec", "--real-noise"], "--real-noise is for --task denoise"),
                      (["--task", "denoise", "--real-noise", "--sigma-range", "0,10"], "--sigma-range is for Gaussian"),
                      (["--task", "denoise", "--init", "no-such-model"], "no-such-model")):
        r = runner.invoke(app, ["train", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--steps", "1", *args])
        assert r.exit_code != 0 and msg in r.output and "Traceback" not in r.output, r.output

"""Encoder-side refinement (`compress --effort`): smaller files at equal quality, ordinary .lat files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aecli import format as latformat
from aecli import registry
from aecli.cli import app
from aecli.codec import api, refine
from aecli.codec.transforms import to_tensor
from aecli.images.decode import read_image
from aecli.images.image import Image

from conftest import photo_like

ROOT = Path(__file__).resolve().parent.parent


def _rd_loss(codec, img: Image, data: bytes) -> float:
    """The level's loss lambda * 255^2 * MSE + bpp, from the real file and its real decoding."""
    lat = latformat.unpack(data)
    back = codec.decompress(lat).pixels.astype(np.float64)
    mse = np.mean((back - img.pixels.astype(np.float64)) ** 2) / 255.0**2
    lam = codec.model.lambdas[codec.index_of(lat.quality)]
    return lam * 255.0**2 * mse + 8 * len(data) / (lat.width * lat.height)


@pytest.fixture(scope="module")
def bundled():
    return api.Codec.load(registry.resolve("hp", "codec"))


@pytest.fixture(scope="module")
def crop():
    px = read_image(ROOT / "samples" / "kodim23.png").pixels[100:196, 200:328].copy()  # 96 x 128
    return Image(px, None, "RGB", 8)


@pytest.mark.parametrize("quality", [2, 9])
def test_refined_files_have_a_lower_rate_distortion_loss(bundled, crop, quality):
    plain = bundled.compress(crop, quality)
    refined = bundled.compress(crop, quality, effort=1)
    assert refined != plain
    assert _rd_loss(bundled, crop, refined) < _rd_loss(bundled, crop, plain) * 0.99


def test_refinement_is_reproducible_and_decodes_normally(bundled, crop):
    a = bundled.compress(crop, 5, effort=1)
    assert bundled.compress(crop, 5, effort=1) == a
    lat = latformat.unpack(a)
    assert (lat.model, lat.quality, lat.width, lat.height) == ("hp", 5, 128, 96)
    assert bundled.decompress(lat).pixels.shape == (96, 128, 3)


def test_a_worse_result_is_never_kept(bundled, crop, monkeypatch):
    """Refinement that diverges (absurd step size) falls back to the analysis's own latents."""
    monkeypatch.setitem(refine.EFFORTS, 1, refine.Effort(5, 50.0))
    assert bundled.compress(crop, 5, effort=1) == bundled.compress(crop, 5)


def test_tiles_cover_the_image_and_leave_the_inputs_alone(bundled, rng):
    img = Image(photo_like(150, 200, rng), None, "RGB", 8)  # latents 12 x 16 once padded to 192 x 256
    qi = 4
    y, z = bundled.latents(bundled.analyse(img), qi)
    y0, z0 = y.clone(), z.clone()
    x, h, w = to_tensor(img, bundled.model.align)
    calls = []
    y1, z1 = refine.refine(bundled.model, x, (h, w), y, z, qi, refine.Effort(3, 0.01), tile=8, halo=4,
                           bar=lambda: calls.append(1))
    assert torch.equal(y, y0) and torch.equal(z, z0)
    assert len(calls) == 3 * refine.tiles((12, 16), 8) == 3 * 4
    assert y1.shape == y.shape and z1.shape == z.shape
    assert (y1 != y).any()
    # the file of the refined latents decodes like any other
    data = latformat.pack(latformat.LatFile(model="hp", fingerprint=bundled.files.fingerprint, quality=qi + 1,
                                            width=w, height=h, mode="RGB",
                                            streams=tuple(bundled.encode_latents(y1, z1, qi))))
    assert bundled.decompress(latformat.unpack(data)).pixels.shape == (150, 200, 3)


def test_padding_does_not_count():
    y = torch.zeros(1, 4, 8, 8)
    x = torch.zeros(1, 3, 128, 128, dtype=torch.uint8)
    w = refine._Window(x, (100, 70), y, torch.zeros(1, 2, 2, 2), slice(0, 8), slice(0, 8), 4)
    assert float(w.pix.sum()) == 100 * 70
    inner = refine._Window(x, (128, 128), y, None, slice(4, 8), slice(0, 4), 4)
    assert float(inner.pix.sum()) == 64 * 64 and float(inner.inner_y.sum()) == 16


def test_tiny_models_refine_too(rng):
    for name in ("tiny-hp", "tiny-fp"):
        c = api.load_codec(name)
        img = Image(photo_like(40, 56, rng), None, "RGB", 8)
        data = c.compress(img, 2, effort=1)
        assert c.decompress(latformat.unpack(data)).pixels.shape == (40, 56, 3)
        assert _rd_loss(c, img, data) <= _rd_loss(c, img, c.compress(img, 2)) * 1.05


def test_cli_effort(tmp_path, rng):
    from PIL import Image as P

    P.fromarray(photo_like(32, 48, rng)).save(tmp_path / "a.png")
    runner = CliRunner()
    r = runner.invoke(app, ["compress", str(tmp_path / "a.png"), str(tmp_path / "a.lat"), "-m", "tiny-hp", "-e", "1"])
    assert r.exit_code == 0, r.output
    assert latformat.unpack((tmp_path / "a.lat").read_bytes()).model == "tiny-hp"
    r = runner.invoke(app, ["compress", str(tmp_path / "a.png"), str(tmp_path / "b.lat"), "-m", "tiny-hp", "--effort", "7"])
    assert r.exit_code != 0 and "--effort must be one of 0, 1, 2, 3" in r.output
    assert not (tmp_path / "b.lat").exists()
    r = runner.invoke(app, ["compress", str(tmp_path / "a.png"), str(tmp_path / "c.lat"), "-m", "tiny-hp", "-e", "1",
                            "--max-bytes", "400"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "c.lat").read_bytes()) <= 400


def test_compare_and_eval_take_the_effort(tmp_path, rng):
    from PIL import Image as P

    P.fromarray(photo_like(32, 48, rng)).save(tmp_path / "a.png")
    runner = CliRunner()
    r = runner.invoke(app, ["compare", str(tmp_path / "a.png"), "-m", "tiny-hp", "-e", "1", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["eval", str(tmp_path / "a.png"), "-m", "tiny-hp", "--out", str(tmp_path / "ev"), "-e", "4"])
    assert r.exit_code != 0 and "--effort must be one of" in r.output
    assert not (tmp_path / "ev").exists()

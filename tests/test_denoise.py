"""Denoising: noise tool, sigma estimate, tiled inference, the denoise CLI, training smoke test."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import registry
from aecli.cli import app
from aecli.denoise.api import load_denoiser
from aecli.denoise.noise import add_gaussian, add_poisson_gaussian, estimate_sigma
from aecli.metrics import psnr
from aecli.images.decode import read_image
from aecli.images.image import Image

from conftest import photo_like

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path, **kw)
    return path


def smooth_image(h: int, w: int, channels: int = 3) -> np.ndarray:
    """A noise-free image: gradients, slow waves and a few soft-edged shapes, values in 40..215."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        v = 128 + 40 * np.sin(xx / 13.0 + c) * np.cos(yy / 17.0 - c) + 30 * (xx / w - 0.5) + 20 * (yy / h - 0.5) * (c - 1)
        v += 25 * (np.hypot(xx - w / 3, yy - h / 2) < h / 5)
        planes.append(v)
    img = np.clip(np.stack(planes, axis=2), 40, 215).round().astype(np.uint8)
    return img[..., 0] if channels == 1 else img


@pytest.fixture(autouse=True)
def _one_thread():
    """Many small convolutions: one thread is much faster on a busy 2-core machine, and the results do not change."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def noisy(tmp_path, rng):
    return save(tmp_path / "noisy.png", add_gaussian(photo_like(40, 56, rng), 20, seed=5))


# --------------------------------------------------------------------------------------
# noise and the sigma estimate


def test_add_gaussian_is_deterministic():
    x = smooth_image(32, 40)
    a, b, c = add_gaussian(x, 25, 1), add_gaussian(x, 25, 1), add_gaussian(x, 25, 2)
    assert a.dtype == np.uint8 and a.shape == x.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    f = add_gaussian(x, 25, 1, clip=False)
    assert f.dtype == np.float32 and np.abs(np.clip(np.rint(f), 0, 255) - a).max() <= 1
    assert abs(float((f - x).std()) - 25) < 1.5
    assert np.array_equal(add_gaussian(x, 0, 7), x)
    p1, p2 = add_poisson_gaussian(x, 30, 2, seed=3), add_poisson_gaussian(x, 30, 2, seed=3)
    assert np.array_equal(p1, p2) and not np.array_equal(p1, x)
    assert abs(float(p1.mean()) - float(x.mean())) < 2
    with pytest.raises(ValueError):
        add_gaussian(x, -1, 0)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("sigma", [5, 10, 25, 50])
def test_estimate_sigma_accuracy(sigma, channels):
    img = smooth_image(128, 128, channels)
    for clip in (True, False):
        est = estimate_sigma(add_gaussian(img, sigma, seed=sigma, clip=clip))
        assert abs(est - sigma) <= 0.15 * sigma, (sigma, channels, clip, est)


def test_estimate_sigma_edge_cases():
    img = smooth_image(64, 64)
    assert estimate_sigma(img) < 1.0  # clean
    assert estimate_sigma(np.full((2, 2), 9, np.uint8)) == 0.0  # too small to tell
    small = add_gaussian(smooth_image(12, 12, 1), 20, seed=1)  # falls back to the Laplacian estimate
    assert 10 < estimate_sigma(small) < 30


def test_noise_cli_same_seed_same_bytes(tmp_path, rng):
    clean = save(tmp_path / "clean.png", smooth_image(48, 64))
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        r = run("noise", clean, tmp_path / f"{name}.png", "--sigma", 25, "--seed", seed)
        assert r.exit_code == 0, r.output
        assert "sigma 25" in r.stderr
    a, b, c = ((tmp_path / f"{n}.png").read_bytes() for n in "abc")
    assert a == b and a != c
    got = read_image(tmp_path / "a.png").pixels
    assert np.array_equal(got, add_gaussian(read_image(clean).pixels, 25, 1))
    assert abs(psnr(got, read_image(clean).pixels) - 20.17) < 0.5
    r = run("noise", clean, tmp_path / "p.png", "--sigma", 0, "--poisson", 20)
    assert r.exit_code == 0 and "Poisson peak 20" in r.stderr


def test_noise_needs_no_torch(tmp_path):
    save(tmp_path / "c.png", smooth_image(16, 16))
    code = (
        "import sys\nfrom aecli.cli import app\n"
        "try:\n    app(['noise', sys.argv[1], sys.argv[2], '--sigma', '10', '-q'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.png"), str(tmp_path / "n.png")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert (tmp_path / "n.png").exists()


# --------------------------------------------------------------------------------------
# the API


@pytest.mark.parametrize("gray", [False, True])
def test_tiled_equals_untiled(rng, gray):
    den = load_denoiser("tiny-dn")
    clean = photo_like(70, 90, rng, channels=1 if gray else 3)
    noisy = add_gaussian(clean, 20, seed=0)
    whole, level = den.denoise_array(noisy, 20, tile=1 << 20)
    tiles, _ = den.denoise_array(noisy, 20, tile=16)  # 5 x 6 tiles
    assert level.sigma == 20.0 and level.how == "given" and whole.shape == tiles.shape == clean.shape
    assert abs(psnr(whole, clean) - psnr(tiles, clean)) < 0.01
    assert np.abs(whole.astype(int) - tiles.astype(int)).max() <= 1
    # without a halo the tiles do show: the test would catch a halo that is too small
    seams, _ = den.denoise_array(noisy, 20, tile=16, halo=0)
    assert np.abs(whole.astype(int) - seams.astype(int)).max() > 2


def test_api_modes_alpha_and_sigma(rng):
    den = load_denoiser("tiny-dn")
    assert load_denoiser("tiny-dn") is den  # cached
    px = add_gaussian(photo_like(21, 23, rng), 15, seed=2)  # odd sizes: padded inside
    alpha = rng.integers(0, 256, (21, 23), dtype=np.uint8)
    out, level = den.denoise(Image(px, alpha, "RGBA"), "auto")
    assert out.mode == "RGBA" and out.pixels.shape == px.shape and out.alpha is alpha
    assert level.how == "estimated" and 5 < level.sigma < 40
    gray = px[..., 1]
    out, level = den.denoise(Image(gray, alpha, "LA"), 15)
    assert out.mode == "LA" and out.pixels.shape == gray.shape and out.alpha is alpha and level.sigma == 15.0
    out, _ = den.denoise(Image(np.array([[7]], np.uint8), None, "L"), 10)  # 1x1
    assert out.pixels.shape == (1, 1)
    floats = add_gaussian(photo_like(16, 16, rng), 25, seed=1, clip=False)
    before = floats.copy()
    den.denoise_array(floats, 25)
    assert np.array_equal(floats, before)  # the caller's array is not touched


# --------------------------------------------------------------------------------------
# the command line


def test_denoise_file_sigma_given_and_estimated(tmp_path, noisy):
    r = run("denoise", noisy, "-m", "tiny-dn")
    assert r.exit_code == 0, r.output
    assert "(estimated)" in r.stderr and "model tiny-dn" in r.stderr
    default_out = tmp_path / "noisy-denoised.png"
    assert read_image(default_out).pixels.shape == (40, 56, 3)
    r = run("denoise", noisy, tmp_path / "given.png", "-m", "tiny-dn", "--sigma", 25)
    assert r.exit_code == 0 and "sigma 25.0 (given)" in r.stderr, r.output
    r = run("denoise", noisy, tmp_path / "auto.png", "-m", "tiny-dn", "--sigma", "auto")
    assert r.exit_code == 0 and "(estimated)" in r.stderr
    assert (tmp_path / "auto.png").read_bytes() == default_out.read_bytes()
    r = run("denoise", noisy, tmp_path / "out.jpg", "-m", "tiny-dn", "-q")
    assert r.exit_code == 0 and r.stderr == ""
    with PILImage.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG"


def test_denoise_modes_and_alpha_files(tmp_path, rng):
    rgb = add_gaussian(photo_like(30, 34, rng), 15, seed=1)
    a = rng.integers(0, 256, (30, 34), dtype=np.uint8)
    save(tmp_path / "rgba.png", np.dstack([rgb, a]))
    save(tmp_path / "la.png", np.dstack([rgb[..., 0], a]))
    save(tmp_path / "l.png", rgb[..., 0])
    for name, mode in (("rgba", "RGBA"), ("la", "LA"), ("l", "L")):
        r = run("denoise", tmp_path / f"{name}.png", tmp_path / f"{name}-out.png", "-m", "tiny-dn")
        assert r.exit_code == 0, r.output
        with PILImage.open(tmp_path / f"{name}-out.png") as im:
            assert im.mode == mode and im.size == (34, 30)
            if mode != "L":
                assert np.array_equal(np.asarray(im)[..., -1], a)


def test_pipeline_noise_then_denoise(tmp_path):
    """cat clean.png | aecli noise - - --sigma 20 --seed 1 | aecli denoise - - --sigma 20 > clean2.png"""
    clean = save(tmp_path / "clean.png", smooth_image(36, 44))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "aecli"]
    noise = subprocess.Popen(cmd + ["noise", "-", "-", "--sigma", "20", "--seed", "1"], stdin=open(clean, "rb"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    den = subprocess.run(cmd + ["denoise", "-", "-", "-m", "tiny-dn", "--sigma", "20"], stdin=noise.stdout,
                         capture_output=True, env=env)
    noise.stdout.close()
    assert noise.wait() == 0 and den.returncode == 0, den.stderr
    assert den.stdout.startswith(b"\x89PNG")
    # the same as going through files
    assert run("noise", clean, tmp_path / "n.png", "--sigma", 20, "--seed", 1).exit_code == 0
    assert run("denoise", tmp_path / "n.png", tmp_path / "d.png", "-m", "tiny-dn", "--sigma", 20).exit_code == 0
    assert (tmp_path / "d.png").read_bytes() == den.stdout


def test_denoise_folder_batch(tmp_path, rng):
    src = tmp_path / "in"
    save(src / "a.png", photo_like(20, 24, rng))
    save(src / "sub" / "b.jpg", photo_like(30, 20, rng))
    save(src / "sub" / "c.gif", photo_like(16, 16, rng))
    (src / "sub" / "broken.png").write_bytes(b"not an image")
    dst = tmp_path / "out"
    r = run("denoise", src, dst, "-m", "tiny-dn", "--sigma", 10)
    assert r.exit_code == 1  # one file failed
    assert "broken.png" in r.stderr and "done 3, skipped 0, failed 1" in r.stderr
    assert (dst / "a.png").exists() and not (dst / "sub" / "broken.png").exists()
    with PILImage.open(dst / "sub" / "b.jpg") as im:
        assert im.format == "JPEG" and im.size == (20, 30)
    assert (dst / "sub" / "c.png").exists()  # .gif cannot be written: PNG, same name
    (src / "sub" / "broken.png").unlink()
    before = (dst / "a.png").stat().st_mtime_ns
    r = run("denoise", src, dst, "-m", "tiny-dn")
    assert r.exit_code == 0 and "skipped 3" in r.stderr
    assert (dst / "a.png").stat().st_mtime_ns == before
    r = run("denoise", src, dst, "-m", "tiny-dn", "--force")
    assert r.exit_code == 0 and "done 3" in r.stderr
    r = run("denoise", src, tmp_path / "out2", "-m", "tiny-dn", "--force", "--workers", "2")
    assert r.exit_code == 0 and "done 3" in r.stderr
    assert (tmp_path / "out2" / "a.png").read_bytes() == (dst / "a.png").read_bytes()
    # an output folder inside the input: its files are not taken as inputs the next time
    for _ in range(2):
        r = run("denoise", src, src / "clean", "-m", "tiny-dn", "--sigma", 10)
        assert r.exit_code == 0, r.output
    assert not (src / "clean" / "clean").exists()
    r = run("denoise", src, src, "-m", "tiny-dn")
    assert r.exit_code == 1 and "input folder" in r.stderr
    # the noise tool on folders: each file its own noise, reproducible
    r = run("noise", dst, tmp_path / "n1", "--sigma", 5)
    assert r.exit_code == 0 and "done 3" in r.stderr
    run("noise", dst, tmp_path / "n2", "--sigma", 5)
    assert (tmp_path / "n1" / "a.png").read_bytes() == (tmp_path / "n2" / "a.png").read_bytes()


@pytest.mark.parametrize(
    "args,message",
    [
        (["denoise", "{tmp}/missing.png", "{tmp}/x.png"], "input not found"),
        (["denoise", "{tmp}/notimage.png", "{tmp}/x.png"], "not a readable image"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/noisy.png"], "same file as the input"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/x.png", "-m", "nosuch"], "model 'nosuch' not found"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/x.png", "-m", "tiny-hp"], "not a denoise model"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/x.png", "--sigma", "abc"], "--sigma must be"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/x.png", "--sigma", "300"], "--sigma must be"),
        (["denoise", "{tmp}/noisy.png", "{tmp}/x.xyz"], "xyz"),
        (["denoise", "{tmp}/noisy.png", "{tmp}"], "is a directory"),
        (["noise", "{tmp}/noisy.png", "{tmp}/x.png", "--sigma", "-1"], "--sigma must be"),
        (["noise", "{tmp}/noisy.png", "{tmp}/x.png", "--sigma", "5", "--poisson", "0"], "--poisson"),
        (["noise", "{tmp}/missing.png", "{tmp}/x.png", "--sigma", "5"], "input not found"),
        (["train", "{tmp}", "--out", "{tmp}/m", "--task", "denoise", "--sigma-range", "5"], "--sigma-range"),
        (["train", "{tmp}", "--out", "{tmp}/m", "--task", "denoise", "--quality", "3"], "--quality"),
        (["train", "{tmp}", "--out", "{tmp}/m", "--sigma-range", "0,50"], "--sigma-range and --blocks are for --task denoise"),
    ],
)
def test_user_errors_are_one_line(tmp_path, noisy, args, message):
    (tmp_path / "notimage.png").write_bytes(b"hello")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(tmp=tmp_path) for a in args]
    if argv[0] == "denoise" and "-m" not in argv:
        argv += ["-m", "tiny-dn"]
    r = run(*argv)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecli: error:") and message in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert read_image(noisy).pixels.shape == (40, 56, 3)


def test_default_model_missing_is_one_clear_line(tmp_path, noisy, monkeypatch):
    monkeypatch.setattr(registry, "_bundled_dir", lambda: tmp_path / "no-bundled-models")
    r = run("denoise", noisy, tmp_path / "x.png")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "model 'dn' not found" in lines[0], r.stderr


# --------------------------------------------------------------------------------------
# training

TINY = ["--task", "denoise", "--channels", "4,8", "--patch", "32", "--batch-size", "2", "--holdout", "1",
        "--log-every", "1", "--ckpt-every", "2", "--val-every", "100", "--seed", "3", "--threads", "1",
        "--sigma-range", "0,50"]


@pytest.fixture
def images(tmp_path, rng):
    d = tmp_path / "imgs"
    for i in range(3):
        save(d / f"{i}.png", photo_like(40 + i, 48, rng))
    save(d / "small.jpg", photo_like(20, 24, rng))  # smaller than a crop
    return d


def train(*args):
    return runner.invoke(app, ["train", *[str(a) for a in args]])


def test_train_denoise_smoke_and_resume(tmp_path, images):
    a, b = tmp_path / "a", tmp_path / "b"
    r = train(images, "--out", a, "--steps", "3", *TINY)
    assert r.exit_code == 0, r.output
    meta = json.loads((a / "a.json").read_text())
    assert meta["task"] == "denoise" and meta["architecture"]["widths"] == [4, 8]
    assert meta["training"]["steps"] == 3 and meta["noise"]["sigma_range"] == [0.0, 50.0]
    assert [v["sigma"] for v in meta["validation"]["psnr"]] == [15, 25, 50]
    assert all(np.isfinite(v["psnr"]) and np.isfinite(v["psnr_blind"]) for v in meta["validation"]["psnr"])
    r = run("denoise", images / "0.png", tmp_path / "d.png", "--model", a)
    assert r.exit_code == 0, r.output
    # resume equals uninterrupted
    assert train(images, "--out", b, "--steps", "1", *TINY).exit_code == 0
    r = train(images, "--out", b, "--steps", "3", "--resume", *TINY)
    assert r.exit_code == 0, r.output
    sa = torch.load(a / "checkpoint.pt", weights_only=True)
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert sb["step"] == 3 and sb["config"]["extra"]["sigma_range"] == [0.0, 50.0]
    for k, v in sa["model"].items():
        assert torch.allclose(v, sb["model"][k], rtol=1e-5, atol=1e-7), k
    la = [h["loss"] for h in sa["history"] if "loss" in h]
    lb = [h["loss"] for h in sb["history"] if "loss" in h]
    assert la == pytest.approx(lb, rel=1e-5) and len(la) == 3

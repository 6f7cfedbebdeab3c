"""Tests for aecli.eval: metrics, Bjøntegaard deltas, Pillow baselines, tables, plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecli.metrics import ms_ssim, psnr, ssim
from aecli.eval.rd import (
    RDPoint,
    baseline_sweep,
    bd_psnr,
    bd_rate,
    encode_decode,
    find_quality,
    load_published,
    size_matched,
    to_markdown,
    write_csv,
    write_json,
    write_table,
)


def smooth_image(h=96, w=128, seed=0) -> np.ndarray:
    """A natural-ish uint8 RGB image: smooth gradients, an edge, and mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 80 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    g = 100 + 0.8 * xx + 40 * (yy > h / 2)
    b = 60 + 1.2 * yy + 30 * np.sin((xx + yy) / 9.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def noisy(img, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------- metrics


def test_psnr_known_values():
    a = np.full((16, 16, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255**2), abs=1e-9)
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-3)
    # MSE 100 on one of three channels -> joint MSE 100/3
    b = a.copy()
    b[..., 0] += 10
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 3 / 100), abs=1e-9)
    # grayscale, and no uint8 wrap-around: 0 vs 255 is the worst case, 0 dB
    assert psnr(np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)) == pytest.approx(0.0)
    assert psnr(a, a + 1, peak=1.0) == pytest.approx(0.0, abs=1e-9)


def test_psnr_identical_is_inf():
    a = smooth_image()
    assert psnr(a, a.copy()) == float("inf")


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_identical_is_one():
    a = smooth_image(192, 192)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_decreases_with_noise_and_is_symmetric():
    a = smooth_image(192, 192)
    values = [ms_ssim(a, noisy(a, s)) for s in (2, 8, 25, 60)]
    assert all(0.0 < v <= 1.0 for v in values)
    assert all(x > y for x, y in zip(values, values[1:])), values
    b = noisy(a, 15)
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), abs=1e-12)
    s_values = [ssim(a, noisy(a, s)) for s in (2, 8, 25, 60)]
    assert all(x > y for x, y in zip(s_values, s_values[1:])), s_values
    # MS-SSIM forgives high-frequency noise more than single-scale SSIM
    assert ms_ssim(a, b) > ssim(a, b)


def test_ms_ssim_matches_reference_value():
    # A closed-form case: b = a + constant c on every pixel. Then every cs term is 1
    # (sigma_x = sigma_y = sigma_xy after the shift), so MS-SSIM = l_last ** w_last
    # where l = (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1) at the coarsest scale.
    a = np.full((176, 176), 100, np.uint8)
    b = a + np.uint8(20)
    c1 = (0.01 * 255) ** 2
    lum = (2 * 100 * 120 + c1) / (100**2 + 120**2 + c1)
    assert ms_ssim(a, b) == pytest.approx(lum**0.1333, rel=1e-9)
    assert ssim(a, b) == pytest.approx(lum, rel=1e-9)


def _torch_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Oracle: the pytorch_msssim algorithm written with torch convolutions and pooling."""
    import torch
    import torch.nn.functional as F

    c = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(c**2) / (2 * 1.5**2))
    g = g / g.sum()

    def blur(t):
        ch = t.shape[1]
        t = F.conv2d(t, g.view(1, 1, 1, 11).repeat(ch, 1, 1, 1), groups=ch)
        return F.conv2d(t, g.view(1, 1, 11, 1).repeat(ch, 1, 1, 1), groups=ch)

    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=torch.float64)
    vals = []
    for i in range(5):
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        s = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
        if i < 4:
            vals.append(torch.relu(cs.mean(dim=(2, 3))))
            pad = [d % 2 for d in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        else:
            vals.append(torch.relu(s.mean(dim=(2, 3))))
    return float(torch.prod(torch.stack(vals) ** w.view(-1, 1, 1), dim=0).mean())


@pytest.mark.parametrize("shape", [(176, 192), (181, 203)])  # even, and odd sides (padded pooling)
def test_ms_ssim_matches_torch_oracle(shape):
    pytest.importorskip("torch")
    a = smooth_image(*shape, seed=7)
    b = noisy(a, 20)
    assert ms_ssim(a, b) == pytest.approx(_torch_ms_ssim(a, b), abs=1e-10)


def test_ms_ssim_small_images_use_fewer_scales():
    a = smooth_image(40, 48)  # 40 -> 20 -> 10: two scales fit
    b = noisy(a, 10)
    v = ms_ssim(a, b)
    assert 0.0 < v < 1.0
    tiny = smooth_image(6, 9)  # smaller than the window
    assert 0.0 < ms_ssim(tiny, noisy(tiny, 10)) < 1.0
    assert ms_ssim(tiny, tiny) == pytest.approx(1.0)


def test_ms_ssim_grayscale_equals_single_channel_of_rgb():
    a = smooth_image(176, 176)
    b = noisy(a, 12)
    per_channel = [ms_ssim(a[..., c], b[..., c]) for c in range(3)]
    assert ms_ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-12)


# -------------------------------------------------------------------- BD


RATES = [0.12, 0.25, 0.5, 0.9, 1.5, 2.2]
PSNRS = [26.0, 28.6, 31.4, 34.0, 36.9, 39.5]


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rate_self_is_zero(method):
    assert bd_rate(RATES, PSNRS, RATES, PSNRS, method) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rate_scaled_rates(method):
    scaled = [r * 0.8 for r in RATES]
    assert bd_rate(RATES, PSNRS, scaled, PSNRS, method) == pytest.approx(-20.0, abs=0.5)
    assert bd_rate(scaled, PSNRS, RATES, PSNRS, method) == pytest.approx(25.0, abs=0.5)
    # order of points must not matter
    assert bd_rate(RATES[::-1], PSNRS[::-1], scaled, PSNRS, method) == pytest.approx(-20.0, abs=0.5)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_psnr_shift(method):
    up = [p + 1.0 for p in PSNRS]
    assert bd_psnr(RATES, PSNRS, RATES, up, method) == pytest.approx(1.0, abs=1e-6)
    assert bd_psnr(RATES, up, RATES, PSNRS, method) == pytest.approx(-1.0, abs=1e-6)
    # a curve 1 dB better needs fewer bits
    assert bd_rate(RATES, PSNRS, RATES, up, method) < 0


def test_bd_rate_partial_overlap_and_errors():
    # B covers only part of A's PSNR range, still with the same 30% saving
    rb = [r * 0.7 for r in RATES[1:5]]
    assert bd_rate(RATES, PSNRS, rb, PSNRS[1:5], "pchip") == pytest.approx(-30.0, abs=1.0)
    with pytest.raises(ValueError):
        bd_rate([0.1, 0.2], [20, 21], [0.1, 0.2], [30, 31])  # no overlap
    with pytest.raises(ValueError):
        bd_rate(RATES, PSNRS, RATES, PSNRS, "linear")
    with pytest.raises(ValueError):
        bd_rate([0.0, 1.0], [20, 30], [0.5, 1.0], [20, 30])


def test_pchip_matches_scipy_when_available():
    interpolate = pytest.importorskip("scipy.interpolate")
    from aecli.eval.rd import _pchip_integral

    x = np.array([24.0, 26.5, 30.0, 31.0, 36.0, 41.0])
    y = np.array([-2.0, -1.4, -0.2, -0.3, 0.5, 1.1])
    ref = interpolate.PchipInterpolator(x, y).integrate(25.0, 40.0)
    assert _pchip_integral(x, y, 25.0, 40.0) == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------- baselines


@pytest.mark.parametrize("codec", ["jpeg", "webp", "avif"])
def test_baseline_sweep_bpp_increases_with_quality(codec):
    img = smooth_image()
    pts = baseline_sweep([img, smooth_image(seed=3)], codec, [10, 50, 90])
    assert [p.quality for p in pts] == [10, 50, 90]
    assert all(p.n_images == 2 and p.codec == codec for p in pts)
    bpps = [p.bpp for p in pts]
    assert all(x < y for x, y in zip(bpps, bpps[1:])), bpps
    assert pts[-1].psnr > pts[0].psnr
    assert all(0 < p.ms_ssim <= 1 for p in pts)


def test_baseline_points_are_means_of_real_files():
    a, b = smooth_image(seed=5), smooth_image(seed=6)
    (pt,) = baseline_sweep([a, b], "jpeg", [60])
    da, ra = encode_decode(a, "jpeg", 60)
    db, rb = encode_decode(b, "jpeg", 60)
    assert da[:2] == b"\xff\xd8"  # a real JPEG file
    assert pt.bpp == pytest.approx((8 * len(da) + 8 * len(db)) / 2 / (96 * 128))
    assert pt.psnr == pytest.approx((psnr(a, ra) + psnr(b, rb)) / 2)


def test_size_matched_respects_budget():
    img = smooth_image()
    for codec in ("jpeg", "webp"):
        big, _ = encode_decode(img, codec, 90)
        budget = len(big) // 2
        data, dec = size_matched(img, codec, budget)
        assert len(data) <= budget
        assert dec.shape == img.shape and dec.dtype == np.uint8
        q, data2 = find_quality(img, codec, budget)
        assert data2 == data
        # the binary search tried the next quality up, and it did not fit
        assert q < 100 and len(encode_decode(img, codec, q + 1)[0]) > budget
    with pytest.raises(ValueError):
        size_matched(img, "jpeg", 10)


def test_grayscale_baseline():
    g = smooth_image()[..., 1]
    data, dec = encode_decode(g, "jpeg", 75)
    assert dec.shape == g.shape
    assert psnr(g, dec) > 25


# --------------------------------------------------------- tables, plots


def test_tables_and_published(tmp_path):
    pts = [RDPoint("jpeg", 50, 1.0, 30.0, 0.97, 2), RDPoint("jpeg", 80, 2.0, 34.5, 0.99, 2)]
    md = to_markdown(pts, ["codec", "quality", "bpp", "psnr"], digits=2)
    assert md.splitlines()[0] == "| codec | quality | bpp | psnr |"
    assert "| jpeg | 80 | 2.00 | 34.50 |" in md
    with open(write_csv(pts, tmp_path / "t.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["psnr"] == "34.5" and len(rows) == 2
    write_json({"pts": pts, "x": float("inf")}, tmp_path / "t.json")
    loaded = json.loads((tmp_path / "t.json").read_text())
    assert loaded["pts"][0]["bpp"] == 1.0 and loaded["x"] == "inf"
    write_table(pts, tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text().startswith("| codec")

    ref = tmp_path / "pub.json"
    ref.write_text(json.dumps({"_about": "x", "m": [[0.5, 31.0, 0.97], [0.2, 28.0, 0.94]]}))
    curves = load_published(ref)
    assert list(curves) == ["m"]
    assert curves["m"][0] == (0.2, 28.0, 0.94)


def test_plot_rd(tmp_path):
    pytest.importorskip("matplotlib")
    from aecli.eval.rd import plot_rd

    out = plot_rd({"a": [(0.5, 30), (1.0, 33)], "b": [RDPoint("x", 1, 0.4, 31, 0.9)]}, tmp_path / "p.png", "t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_module_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, aecli.eval; before = 'torch' in sys.modules; "
        "import aecli.metrics, aecli.eval.rd; "
        "print(before, 'torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "True":
        pytest.skip("the aecli package itself imports torch")
    assert out[1:] == ["False", "False"]


# ---- resumable sweeps (aecli/eval/partial.py) --------------------------------------------------

HEAD = {"model": "m", "fingerprint": "0123abcd", "effort": 1, "qualities": [1, 2]}
POINTS = {1: {"bpp": 0.5, "psnr": 30.0}, 2: {"bpp": 1.0, "psnr": float("inf")}}


def test_partial_record_round_trip_and_torn_last_line(tmp_path):
    from aecli.eval.partial import PartialRun

    rec = tmp_path / "rd.partial.jsonl"
    run = PartialRun(rec, HEAD, resume=False)
    run.add(Path("a.png"), "aa", POINTS)
    run.add(Path("b.png"), "bb", POINTS)
    complete = rec.read_bytes()
    rec.write_bytes(complete + b'{"image": "c.png", "sha')  # killed while writing the third line
    again = PartialRun(rec, HEAD, resume=True)
    assert again.get(Path("a.png"), "aa") == POINTS and again.get(Path("b.png"), "bb") == POINTS
    assert again.get(Path("a.png"), "other content") is None and again.get(Path("c.png"), "cc") is None
    assert rec.read_bytes() == complete  # the torn line is cut off, later lines append cleanly
    again.add(Path("c.png"), "cc", POINTS)
    assert len(PartialRun(rec, HEAD, resume=True).done) == 3
    PartialRun(rec, HEAD, resume=False)  # without resume: a fresh record
    assert PartialRun(rec, HEAD, resume=True).done == {}


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw.replace(b'"effort": 1', b'"effort": 2', 1), "recorded with effort 2"),
    (lambda raw: raw.replace(b'"0123abcd"', b'"ffffffff"', 1), "recorded with fingerprint"),
    (lambda raw: raw.replace(b'"image"', b'"imag"', 1), "damaged"),
    (lambda raw: raw.replace(b'}\n{', b'}\n{{', 1), "damaged"),
    (lambda raw: b"not json at all\n", "not a record"),
    (lambda raw: b"", "not a record"),
])
def test_partial_record_refuses_what_it_cannot_trust(tmp_path, damage, message):
    from aecli.errors import UserError
    from aecli.eval.partial import PartialRun

    rec = tmp_path / "rd.partial.jsonl"
    PartialRun(rec, HEAD, resume=False).add(Path("a.png"), "aa", POINTS)
    rec.write_bytes(damage(rec.read_bytes()))
    with pytest.raises(UserError, match=message):
        PartialRun(rec, HEAD, resume=True)


def test_eval_resume_measures_only_the_images_left(tmp_path, monkeypatch):
    from aecli.eval import codec_eval

    rng = np.random.default_rng(5)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for n in "abc":
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(imgs / f"{n}.png")
    full = codec_eval.evaluate([str(imgs)], str(tmp_path / "full"), "tiny-hp", (), None, "rd", 0)

    measured = []
    real = codec_eval._measure_image

    def interrupted_after_two(codec, img, effort, step):
        if len(measured) == 2:
            raise KeyboardInterrupt
        measured.append(img)
        return real(codec, img, effort, step)

    out = tmp_path / "ev"
    monkeypatch.setattr(codec_eval, "_measure_image", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        codec_eval.evaluate([str(imgs)], str(out), "tiny-hp", (), None, "rd", 0)
    assert (out / "rd.partial.jsonl").exists() and not (out / "rd.json").exists()
    measured.clear()
    monkeypatch.setattr(codec_eval, "_measure_image", lambda *a: measured.append(a[1]) or real(*a))
    res = codec_eval.evaluate([str(imgs)], str(out), "tiny-hp", (), None, "rd", 0, resume=True)
    assert len(measured) == 1  # only the third image
    assert res["model"]["images_from_earlier_runs"] == 2
    assert "2 of the 3 images were measured by an earlier" in (out / "rd.md").read_text()
    for ours, ref in zip(res["curves"]["aecli"], full["curves"]["aecli"]):
        assert (ours["bpp"], ours["psnr"], ours["ms_ssim"]) == (ref["bpp"], ref["psnr"], ref["ms_ssim"])
    assert not (out / "rd.partial.jsonl").exists()  # removed once the results are written

"""The fitted codec: round trips, determinism of the latents, its structure record, corrupt files
and the command line.  Fits are a few iterations on tiny images (quality is not tested here)."""

import zlib

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aecli import format as latformat
from aecli.cli import app
from aecli.codec.fitted import codec, header, stream
from aecli.codec.fitted.intarm import IntArm
from aecli.errors import UserError
from aecli.images.image import Image

from conftest import photo_like

runner = CliRunner()


def _image(h, w, mode, seed=0):
    rng = np.random.default_rng(seed)
    px = photo_like(h, w, rng)
    if mode in ("L", "LA"):
        px = px.mean(axis=2).astype(np.uint8)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8) if mode in ("RGBA", "LA") else None
    return Image(px, alpha, mode, 8)


@pytest.fixture(scope="module")
def fitted_rgb():
    img = _image(32, 40, "RGB")
    return img, codec.compress(img, 6, iterations=12)


def test_round_trip_rgb(fitted_rgb):
    img, res = fitted_rgb
    lat = latformat.unpack(res.data)
    assert lat.kind == "fitted" and lat.model == codec.NAME and latformat.version_of(lat) == 3
    back = codec.decompress(lat)
    assert back.pixels.shape == img.pixels.shape and back.mode == "RGB"
    mse = np.mean((back.pixels.astype(float) - img.pixels) ** 2)
    assert abs(10 * np.log10(255**2 / mse) - res.psnr) < 1e-6  # the encoder reports what decodes
    assert res.bpp == 8 * len(res.data) / (32 * 40)


@pytest.mark.parametrize("mode,h,w", [("L", 9, 13), ("RGBA", 17, 5), ("LA", 1, 1)])
def test_round_trip_modes(mode, h, w):
    img = _image(h, w, mode, seed=3)
    res = codec.compress(img, 2, iterations=3)
    back = codec.decompress(latformat.unpack(res.data))
    assert back.mode == mode and back.pixels.shape == img.pixels.shape
    if img.alpha is not None:
        assert np.array_equal(back.alpha, img.alpha)


def _latents(data, dtype=np.float64):
    lat = latformat.unpack(data)
    s = header.unpack(lat.streams[0])
    rd = stream.Reader(s, lat.streams[1], lat.streams[2])
    ints = stream.get_parameters(rd, s)
    arm = IntArm(ints[:s.arm_tensors()], s.exponents[:s.arm_tensors()], s)
    return [p.copy() for p in stream.decode_latents(rd, s, lat.width, lat.height, arm, dtype=dtype)]


def test_latents_same_for_threads_and_dtype():
    """Busy latents (a few iterations leave them near zero): random integers in a fitted file."""
    from aecli.codec.fitted.fit import fit

    img = _image(24, 20, "RGB", seed=4)
    f = fit(codec._target(img), codec.LAMBDAS[8], codec.structure_for("RGB"), 4)
    rng = np.random.default_rng(9)
    f.planes = [rng.laplace(0, 3, p.shape).round().astype(np.int64) for p in f.planes]
    data = codec.pack(f, img, 8)
    one = _latents(data)
    single = _latents(data, np.float32)
    for a, b, c in zip(one, single, f.planes):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert any(np.abs(p).sum() for p in one)  # the fit put something in the latents
    # the decoder's BLAS on one thread and on its default count, in fresh processes (numpy alone)
    import subprocess
    import sys

    script = ("import sys, numpy as np; from aecli import format as f; from aecli.codec.fitted import decoder; "
              "lat = f.unpack(sys.stdin.buffer.read()); "
              "sys.stdout.buffer.write(np.concatenate([p.ravel() for p in decoder.decode_latents(lat)]).tobytes()); "
              "assert 'torch' not in sys.modules")
    runs = []
    for env in ({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, {}):
        import os

        full = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")} | env
        r = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True, env=full, check=True)
        runs.append(np.frombuffer(r.stdout, dtype=np.int64))
    assert np.array_equal(runs[0], runs[1])
    assert np.array_equal(runs[0], np.concatenate([p.ravel() for p in one]).astype(np.int64))


def test_encoder_latents_are_decoded():
    """What the encoder fitted is what the decoder gets back, exactly."""
    from aecli.codec.fitted.fit import fit

    img = _image(16, 24, "RGB", seed=5)
    f = fit(codec._target(img), codec.LAMBDAS[7], codec.structure_for("RGB"), 8)
    data = codec.pack(f, img, 7)
    for a, b in zip(f.planes, _latents(data)):
        assert np.array_equal(a, b)


def test_header_round_trip_and_bounds():
    s = header.Structure()
    n = len(s.tensor_shapes())
    s = header.Structure(exponents=(8,) * n, tables=(5,) * n)
    assert header.unpack(s.pack()) == s
    raw = bytearray(s.pack())
    for i, bad in [(0, 9), (1, 0), (1, 99), (2, 200), (3, 0), (7, 2)]:
        b = bytearray(raw)
        b[i] = bad
        with pytest.raises(header.HeaderError):
            header.unpack(bytes(b))
    with pytest.raises(header.HeaderError):
        header.unpack(bytes(raw[:-1]))
    with pytest.raises(header.HeaderError):
        header.unpack(bytes(raw[:3]))
    b = bytearray(raw)
    b[header.FIXED_SIZE] = 200  # an exponent out of range
    with pytest.raises(header.HeaderError):
        header.unpack(bytes(b))


def test_corrupt_files_give_user_errors(fitted_rgb):
    lat = latformat.unpack(fitted_rgb[1].data)
    rng = np.random.default_rng(1)
    outcomes = set()
    for i in range(60):
        streams = list(lat.streams)
        k = i % 3
        s = bytearray(streams[k])
        if s and i % 2:
            s[rng.integers(len(s))] ^= 1 << int(rng.integers(8))
        else:
            s = s[: len(s) // 2]
        streams[k] = bytes(s)
        bad = latformat.LatFile(**{**lat.__dict__, "streams": tuple(streams)})
        try:
            codec.decompress(latformat.unpack(latformat.pack(bad)))
            outcomes.add("decoded")
        except UserError as exc:
            assert "\n" not in str(exc)
            outcomes.add("error")
    assert "error" in outcomes
    with pytest.raises(UserError, match="streams"):
        codec.decompress(latformat.LatFile(**{**lat.__dict__, "streams": lat.streams[:2]}))


def test_decode_limit_before_work(fitted_rgb):
    lat = latformat.unpack(fitted_rgb[1].data)
    big = latformat.LatFile(**{**lat.__dict__, "width": 4096, "height": 4096})
    with pytest.raises(UserError, match="limit"):
        codec.decompress(big)
    with pytest.raises(UserError, match="limit"):
        codec.decompress(lat, max_pixels=100)


def test_format_version_3():
    lat = latformat.LatFile("fit", b"FIT1", 3, 5, 4, "RGB", (b"ab", b""), kind="fitted")
    data = latformat.pack(lat)
    assert data[3] == 3 and latformat.unpack(data) == lat
    assert latformat.describe(lat)["kind"] == "fitted"
    with pytest.raises(latformat.FormatError):
        latformat.pack(latformat.LatFile("fit", b"FIT1", 3, 5, 4, "RGB", (), scale=11, kind="fitted"))
    bad = bytearray(data)
    bad[4] |= 0x30  # scale bits are reserved in version 3
    bad[-4:] = (zlib.crc32(bytes(bad[:-4])) & 0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(latformat.FormatError, match="reserved"):
        latformat.unpack(bytes(bad))


def test_cli_round_trip_and_errors(tmp_path):
    from PIL import Image as PILImage

    src = tmp_path / "p.png"
    PILImage.fromarray(photo_like(20, 24, np.random.default_rng(2))).save(src)
    r = runner.invoke(app, ["compress", str(src), "--model", "fit", "--effort", "1", "--time-limit", "0.5", "-Q", "3"])
    assert r.exit_code == 0, r.output
    assert "fitted quality 3" in r.output
    r = runner.invoke(app, ["info", str(tmp_path / "p.lat")])
    assert r.exit_code == 0 and "fitted" in r.output and "ARM" in r.output
    r = runner.invoke(app, ["decompress", str(tmp_path / "p.lat")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.decoded.png").exists()
    for args, msg in [(["--model", "fit", "--effort", "9"], "effort 9"), (["--model", "fit", "-Q", "99"], "quality 99"),
                      (["--time-limit", "5"], "fitted codec only"), (["--model", "fit", "--time-limit", "-1"], "time-limit")]:
        r = runner.invoke(app, ["compress", str(src), str(tmp_path / "x.lat"), *args])
        assert r.exit_code == 1 and msg in r.output, r.output
    r = runner.invoke(app, ["decompress", str(tmp_path / "p.lat"), str(tmp_path / "e.png"), "--exact"])
    assert r.exit_code == 1 and "--exact" in r.output


@pytest.mark.parametrize("name, version", [("fitted", 1), ("fitted2", 2), ("fitted3", 3), ("fitted4", 4)])
def test_vector_decodes_to_its_latents_and_pixels(name, version):
    """tests/vectors/fitted*.*: the committed files (structure versions 1 to 4) decode to the
    committed latents exactly, and to the committed pixels within one level (the synthesis is
    float)."""
    from pathlib import Path

    from aecli.images.decode import decode_image

    vec = Path(__file__).parent / "vectors"
    lat = latformat.unpack((vec / f"{name}.lat").read_bytes())
    assert lat.kind == "fitted"
    assert lat.streams[0][0] == version
    want = np.load(vec / f"{name}.latents.npz")
    got = codec.decode_latents(lat)
    assert len(got) == len(want.files)
    for i, p in enumerate(got):
        assert np.array_equal(p.astype(np.int32), want[f"arr_{i}"])
    px = codec.decompress(lat).pixels.astype(int)
    ref = decode_image((vec / f"{name}.decoded.png").read_bytes()).pixels.astype(int)
    assert np.abs(px - ref).max() <= 1
    r = runner.invoke(app, ["info", str(vec / f"{name}.lat")])
    assert r.exit_code == 0 and f"structure version {version}: " in r.output, r.output
    assert ("sixteenths" in r.output) == (version >= 3)
    assert ("finest plane's 3x3" in r.output) == (version >= 4)


@pytest.fixture
def quick_efforts(monkeypatch):
    """Effort levels of a couple of iterations, so that whole commands run in a test."""
    monkeypatch.setattr(codec, "EFFORTS", {1: 2, 2: 3})
    monkeypatch.setattr(codec, "DEFAULT_EFFORT", 1)


def test_budget_search(tmp_path, quick_efforts):
    from PIL import Image as PILImage

    src = tmp_path / "p.png"
    PILImage.fromarray(photo_like(16, 16, np.random.default_rng(6))).save(src)
    r = runner.invoke(app, ["compress", str(src), str(tmp_path / "a.lat"), "--model", "fit", "--max-bytes", "100000"])
    assert r.exit_code == 0, r.output
    assert f"fitted quality {max(codec.LAMBDAS)}" in r.output  # everything fits: the best quality
    r = runner.invoke(app, ["compress", str(src), str(tmp_path / "b.lat"), "--model", "fit", "--max-bytes", "10"])
    assert r.exit_code == 0 and "over the budget" in r.output and "fitted quality 1" in r.output


def test_eval_covers_the_fitted_codec(tmp_path, quick_efforts, monkeypatch):
    from PIL import Image as PILImage

    from aecli.codec.fitted import evaluation

    monkeypatch.setattr(evaluation.EvalCodec, "qualities", [2, 6])
    (tmp_path / "img").mkdir()
    PILImage.fromarray(photo_like(16, 24, np.random.default_rng(8))).save(tmp_path / "img" / "a.png")
    r = runner.invoke(app, ["eval", str(tmp_path / "img"), "--model", "fit", "--effort", "1", "--out", str(tmp_path / "o"),
                            "--name", "f", "--baselines", "webp"])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads((tmp_path / "o" / "f.json").read_text())
    assert res["model"]["name"] == "fit" and [p["quality"] for p in res["curves"]["aecli"]] == [2, 6]


def test_rounded_iterations_rule():
    """A recipe's last iterations may run on rounded latents: a share of the fit, but at least a
    number (or a quarter of a shorter fit); the recipe now has none."""
    from aecli.codec.fitted.fit import Recipe

    assert [Recipe().rounded_iterations(n) for n in (1, 8, 100, 3000)] == [0, 0, 0, 0]
    r = Recipe(ste_fraction=0.03, ste_least=8)
    assert [r.rounded_iterations(n) for n in (1, 3, 8, 20, 100, 300, 800, 2000)] == [0, 0, 2, 5, 8, 9, 24, 60]
    assert Recipe(ste_fraction=0.25, ste_least=0).rounded_iterations(300) == 75


def test_softround_goes_from_identity_to_rounding():
    """softround is continuous and increasing, equals y at high temperature and round(y) as the
    temperature goes to 0, and is its own fixed point on the integers."""
    from aecli.codec.fitted.fit import softround

    y = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    for t in (0.05, 0.3, 1.0):
        v = softround(y, t)
        assert bool((v[1:] >= v[:-1]).all()) and float((v[1:] - v[:-1]).abs().max()) < 0.05
    assert torch.allclose(softround(y, 100.0), y, atol=1e-4)
    off = (y - y.round()).abs() < 0.4  # away from the half-integers, where rounding jumps
    assert torch.allclose(softround(y, 0.01)[off], y.round()[off], atol=1e-6)
    ints = torch.arange(-3, 4, dtype=torch.float64)
    assert torch.allclose(softround(ints, 0.2), ints)


def test_noisy_phase_follows_the_recipe():
    """The noisy phase uses uniform noise when asked, softround with falling noise by default."""
    from aecli.codec.fitted.fit import Recipe, _noisy

    torch.manual_seed(0)
    y = torch.full((200, 200), 2.3)
    u = _noisy(y, Recipe(quantiser="uniform"), 0.0) - y
    assert float(u.min()) >= -0.5 and float(u.max()) <= 0.5 and abs(float(u.std()) - 12 ** -0.5) < 0.01
    first, last = _noisy(y, Recipe(), 0.0), _noisy(y, Recipe(), 1.0)
    assert float((last - 2).abs().mean()) < float((first - 2).abs().mean())  # pulled to the integer as it goes
    assert float(last.std()) < float(first.std())


def test_fit_rounds_the_last_iterations(monkeypatch):
    """fit() feeds rounded latents to the loss exactly in its last rounded_iterations(n) iterations."""
    from aecli.codec.fitted import fit as fitmod

    seen = []
    real = fitmod._Model.mse

    def spy(self, planes):
        seen.append(bool(torch.equal(planes[0].detach(), torch.round(planes[0].detach()))))
        return real(self, planes)

    monkeypatch.setattr(fitmod._Model, "mse", spy)
    x = torch.rand(3, 8, 8)
    fitmod.fit(x, 0.001, header.Structure(levels=2), 40, recipe=fitmod.Recipe(ste_fraction=0.03, ste_least=8))
    assert seen[:40] == [False] * 32 + [True] * 8
    seen.clear()
    fitmod.fit(x, 0.001, header.Structure(levels=2), 40)  # the recipe now: soft rounding to the end
    assert seen[:40] == [False] * 40


def test_structure_by_the_length_of_the_fit(monkeypatch):
    """Short fits write structure version 3, longer ones the writers' version (both round-trip)."""
    assert codec.structure_for("RGB", codec.LONG_FIT - 1).version == codec.SHORT_VERSION == 3
    assert codec.structure_for("L", codec.LONG_FIT).version == header.VERSION
    assert codec.structure_for("L", codec.LONG_FIT).channels == 1
    monkeypatch.setattr(codec, "LONG_FIT", 5)
    img = _image(12, 16, "RGB", seed=5)
    for n, version, forced in ((4, 3, None), (5, header.VERSION, None), (4, 4, 4)):
        res = codec.compress(img, 5, iterations=n, version=forced)
        lat = latformat.unpack(res.data)
        assert header.unpack(lat.streams[0]).version == version
        back = codec.decompress(lat)
        mse = np.mean((back.pixels.astype(float) - img.pixels) ** 2)
        assert abs(10 * np.log10(255**2 / mse) - res.psnr) < 1e-6


def test_each_layers_step(monkeypatch):
    """finalise chooses each layer's parameter step after the network's (fits of LAYER_STEPS_FROM
    iterations or more): never a higher cost than the network-wide step, one step per ARM layer
    (the integer ARM's rule), and the file decodes to the latents the encoder fitted."""
    import copy

    from aecli.codec.fitted import fit as fitmod

    img = _image(24, 32, "RGB", seed=8)
    lam = codec.LAMBDAS[3]
    caught = {}
    real = fitmod.finalise

    def both(m, lam_, it, sec, per_layer=True, **_):
        caught.update({pl: (copy.deepcopy(m), None) for pl in (False, True)})
        for pl in (False, True):
            mm = caught[pl][0]
            caught[pl] = (mm, real(mm, lam_, it, sec, per_layer=pl, rounding_levels=0))
        return caught[True][1]

    monkeypatch.setattr(fitmod, "finalise", both)
    monkeypatch.setattr(fitmod, "LAYER_STEPS_FROM", 0)
    data = codec.pack(fitmod.fit(codec._target(img), lam, codec.structure_for("RGB"), 10), img, 3)
    costs = {}
    for pl, (m, f) in caught.items():
        planes = [torch.round(y.detach()) for y in m.latents]
        with torch.no_grad():
            costs[pl] = float(m.mse(planes)) + lam * f.bpp  # what finalise minimises (the float synthesis)
        arm = f.structure.exponents[:f.structure.arm_tensors()]
        assert arm[0::2] == arm[1::2]
        if not pl:
            assert len(set(arm)) == 1 and len(set(f.structure.exponents[len(arm):])) == 1
    assert costs[True] <= costs[False] + 1e-12
    for a, b in zip(caught[True][1].planes, _latents(data)):
        assert np.array_equal(a, b)

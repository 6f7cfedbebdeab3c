"""The numpy decoder (aecli/codec/numpy_decoder.py) against the torch one: the same latents, symbol
for symbol (what the entropy coder's probabilities depend on is integer arithmetic, exact in
both); pixels within one level (float32 synthesis in another summation order); the same errors;
and `aecli decompress` of a bundled model's file without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from aecli import format as latformat
from aecli.codec import decoding, numpy_decoder
from aecli.images.image import Image

from conftest import photo_like


def _latents_both(data: bytes):
    """(numpy latents, torch latents) of a .lat file."""
    from aecli.codec import api

    lat = latformat.unpack(data)
    files = decoding.model_for(lat)
    from safetensors.numpy import load_file

    npc = numpy_decoder.NumpyCodec(files, load_file(str(files.weights)))
    tc = api.codec_of(files)
    kind = files.meta["architecture"]["kind"]
    p = decoding.plan(lat, npc.name, npc.fingerprint, npc.qualities, kind, decoding.ALIGN[kind], None)
    y_np = npc.decode_latents(list(p.streams), p.qi, p.ph // 16, p.pw // 16)
    y_t = tc.decode_streams(list(p.streams), p.qi, p.ph // 16, p.pw // 16)[0].numpy()
    return npc, tc, lat, p, y_np, y_t


@pytest.mark.parametrize("model", ["tiny-cb", "tiny-hp", "tiny-fp"])
def test_latents_are_those_of_the_torch_decoder_symbol_for_symbol(model, rng):
    """Untrained tiny models with large gains: many symbols, wide tables, escapes."""
    from aecli.codec import api

    img = Image(pixels=photo_like(70, 90, rng), alpha=None, mode="RGB", source_bits=8)
    codec = api.load_codec(model)
    for q in codec.qualities:
        npc, tc, lat, p, y_np, y_t = _latents_both(codec.compress(img, q, scale=8))
        assert y_np.dtype == y_t.dtype == np.float32
        assert np.array_equal(y_np, y_t)
        px_np = npc.synthesise(y_np, p.qi)
        px_t = tc.transforms.synthesise(tc.decode_streams(list(p.streams), p.qi, p.ph // 16, p.pw // 16), p.qi)[0]
        diff = np.abs(px_np.astype(int) - px_t.permute(1, 2, 0).numpy().astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("quality,scale", [(1, 8), (8, 8), (8, 11), (11, 11)])
def test_bundled_files_decode_alike_with_numpy_and_torch(quality, scale, rng):
    from aecli.codec import api

    img = Image(pixels=photo_like(120, 136, rng), alpha=None, mode="RGB", source_bits=8)
    data = api.load_codec("hpc").compress(img, quality, scale=scale)
    npc, tc, lat, p, y_np, y_t = _latents_both(data)
    assert np.array_equal(y_np, y_t)
    files = decoding.model_for(lat)
    assert numpy_decoder.usable(files, lat, exact=False, device="cpu")
    a = numpy_decoder.decompress(lat, files).pixels.astype(int)
    b = tc.decompress(lat).pixels.astype(int)
    assert a.shape == b.shape == (120, 136, 3)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3


def test_hyperprior_and_alpha_and_gray_files(rng):
    from aecli.codec import api

    px = photo_like(64, 80, rng)
    alpha = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    for model, img in (("hp", Image(pixels=px, alpha=alpha, mode="RGBA", source_bits=8)),
                       ("hpc", Image(pixels=px[..., 0], alpha=None, mode="L", source_bits=8))):
        lat = latformat.unpack(api.load_codec(model).compress(img, 5))
        files = decoding.model_for(lat)
        got, want = numpy_decoder.decompress(lat, files), api.codec_of(files).decompress(lat)
        assert got.mode == want.mode and got.pixels.shape == want.pixels.shape
        assert np.abs(got.pixels.astype(int) - want.pixels.astype(int)).max() <= 1
        if img.alpha is not None:
            assert np.array_equal(got.alpha, alpha)


def test_who_decodes_what(tmp_path, rng):
    """Bundled models on the CPU up to MAX_PIXELS; --exact, other devices, user models and larger
    images go to torch."""
    from aecli.codec import api

    img = Image(pixels=photo_like(40, 40, rng), alpha=None, mode="RGB", source_bits=8)
    lat = latformat.unpack(api.load_codec("hpc").compress(img, 3))
    files = decoding.model_for(lat)
    assert numpy_decoder.usable(files, lat, exact=False, device="cpu")
    assert not numpy_decoder.usable(files, lat, exact=True, device="cpu")
    assert not numpy_decoder.usable(files, lat, exact=False, device="cuda")
    big = latformat.LatFile(model=lat.model, fingerprint=lat.fingerprint, quality=3, width=4096, height=2048,
                            mode="RGB", streams=lat.streams, scale=8)
    assert not numpy_decoder.usable(files, big, exact=False, device="cpu")
    tiny = latformat.unpack(api.load_codec("tiny-cb").compress(img, 2))
    assert not numpy_decoder.usable(decoding.model_for(tiny), tiny, exact=False, device="cpu")


def test_damaged_files_give_the_torch_decoders_errors(rng):
    from aecli.codec import api

    img = Image(pixels=photo_like(48, 64, rng), alpha=None, mode="RGB", source_bits=8)
    lat = latformat.unpack(api.load_codec("hpc").compress(img, 6))
    files = decoding.model_for(lat)
    cases = [
        replace(lat, streams=lat.streams[:-1]),  # a stream missing
        replace(lat, streams=(lat.streams[0][:-4],) + lat.streams[1:]),  # z cut short
        replace(lat, streams=(lat.streams[0], b"\xff" * 8) + lat.streams[2:]),  # anchors wrong
        replace(lat, quality=12),  # no such quality
    ]
    raised = 0
    for bad in cases:
        errors = []
        for decode in (lambda x: numpy_decoder.decompress(x, files), lambda x: api.codec_of(files).decompress(x)):
            try:
                decode(bad)
                errors.append(None)
            except decoding.UserError as exc:
                errors.append(str(exc))
        assert errors[0] == errors[1]
        raised += errors[0] is not None
    assert raised >= 3  # (wrong anchors may still decode, to other latents)


def test_decompress_of_a_bundled_file_does_not_import_torch(tmp_path, rng):
    from aecli.codec import api

    img = Image(pixels=photo_like(64, 96, rng), alpha=None, mode="RGB", source_bits=8)
    src = tmp_path / "a.lat"
    src.write_bytes(api.load_codec("hpc").compress(img, 4))
    code = ("import sys\nfrom aecli.cli import main\nsys.argv = ['aecli', 'decompress', '-q', sys.argv[1], sys.argv[2]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "a.png")], capture_output=True, text=True,
                       env=env)
    assert r.stdout.strip() == "exit 0 False", r.stderr
    r = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "b.png")], capture_output=True, text=True,
                       env={**env, "AECLI_DECODER": "torch"})
    assert r.returncode == 0 and r.stdout == "", r.stderr  # the torch decoder; exits without teardown
    from PIL import Image as PILImage

    a = np.asarray(PILImage.open(tmp_path / "a.png")).astype(int)
    b = np.asarray(PILImage.open(tmp_path / "b.png")).astype(int)
    assert np.abs(a - b).max() <= 1

"""Coding scale: the encoder may code an image larger than it is (aecli/codec/levels.py)."""

import numpy as np
import pytest

from aecli import format as latformat
from aecli.codec import api, levels
from aecli.errors import UserError
from aecli.images.image import Image


def _img(px, mode=None, alpha=None):
    return Image(pixels=px, alpha=alpha, mode=mode or ("L" if px.ndim == 2 else "RGB"), source_bits=8)


def _psnr_cost(codec, img, data, q):
    back = codec.decompress(latformat.unpack(data)).pixels.astype(np.float64)
    x = img.pixels.astype(np.float64)
    lam = codec.model.lambdas[codec.index_of(q)]
    return lam * np.mean((back - x) ** 2) + 8 * len(data) / (x.shape[0] * x.shape[1])


@pytest.mark.parametrize("w,h,scale,want", [(1, 1, 11, (2, 2)), (768, 512, 11, (1056, 704)), (10, 7, 12, (15, 11)),
                                            (8, 8, 8, (8, 8)), (3, 5, 16, (6, 10))])
def test_coded_size_is_integer_ceiling(w, h, scale, want):
    assert levels.coded_size(w, h, scale) == want


def test_candidates_and_gain_vectors():
    assert levels.candidates(0, 100, 100) == [8]  # the lowest quality has no coarser gain vector
    assert levels.candidates(3, 100, 100) == [8, levels.SCALED]
    assert levels.candidates(3, levels.MAX_SCALED_PIXELS, 1) == [8, levels.SCALED]
    assert levels.candidates(3, levels.MAX_SCALED_PIXELS + 1, 1) == [8]  # huge images: own size only
    assert levels.gain_index(3, 8) == 3 and levels.gain_index(3, levels.SCALED) == 2


def test_scaled_coding_round_trips(rng):
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    img = _img(px)
    data = codec.compress(img, 3, scale=levels.SCALED)
    assert data == codec.compress(img, 3, scale=levels.SCALED)  # the same bytes twice
    lat = latformat.unpack(data)
    assert (lat.width, lat.height, lat.quality, lat.scale) == (53, 37, 3, levels.SCALED)
    assert data[3] == 2  # a scaled file is a version 2 file
    back = codec.decompress(lat)
    assert back.pixels.shape == px.shape and back.pixels.dtype == np.uint8
    assert codec.compress(img, 3, scale=8)[3] == 1


def test_scaled_coding_is_the_upsampled_image_at_the_next_gain_vector(rng):
    """Quality 3 at 11/8 holds the streams of quality 2 of the upsampled image and decodes to its
    decoded pixels scaled back down."""
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    up = _img(levels.upscale(px, levels.SCALED))
    assert up.pixels.shape == (28, 42, 3)
    plain = codec.compress(up, 2, scale=8)
    scaled = codec.compress(_img(px), 3, scale=levels.SCALED)
    assert latformat.unpack(scaled).streams == latformat.unpack(plain).streams
    want = levels.downscale(codec.decompress(latformat.unpack(plain)).pixels, 30, 20)
    assert np.array_equal(codec.decompress(latformat.unpack(scaled)).pixels, want)


def test_a_tall_scaled_file_decodes_with_the_formats_resize_not_a_library(rng, monkeypatch):
    """The downscale is the format's (resample.py), rows first, for any shape: a tall image, where
    Pillow 13 would resize columns first, and with Pillow's resize unavailable."""
    from PIL import Image as PILImage

    from aecli.codec import resample

    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (70, 9, 3), dtype=np.uint8)
    scaled = latformat.unpack(codec.compress(_img(px), 3, scale=levels.SCALED))
    plain = latformat.unpack(codec.compress(_img(levels.upscale(px, levels.SCALED)), 2, scale=8))
    coded = codec.decompress(plain).pixels  # 97 x 13
    monkeypatch.setattr(PILImage.Image, "resize", lambda *a, **k: pytest.fail("Pillow resize in the decoder"))
    back = codec.decompress(scaled).pixels
    assert np.array_equal(back, resample.resize(resample.resize(coded, 9, 97), 9, 70))


@pytest.mark.parametrize("q", [2, 3])
def test_the_encoder_keeps_the_cheaper_file(rng, q):
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img = _img(px)
    files = {s: codec.compress(img, q, scale=s) for s in (8, levels.SCALED)}
    costs = {s: _psnr_cost(codec, img, d, q) for s, d in files.items()}
    best = min(costs, key=costs.get)
    assert codec.compress(img, q) == files[best]


def test_scaled_coding_keeps_mode_and_alpha(rng):
    codec = api.load_codec("tiny-hp")
    grey = rng.integers(0, 256, (17, 19), dtype=np.uint8)
    back = codec.decompress(latformat.unpack(codec.compress(_img(grey), 2, scale=levels.SCALED)))
    assert back.mode == "L" and back.pixels.shape == grey.shape
    rgb = rng.integers(0, 256, (17, 19, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (17, 19), dtype=np.uint8)
    for scale in (None, levels.SCALED):
        back = codec.decompress(latformat.unpack(codec.compress(_img(rgb, "RGBA", alpha), 3, scale=scale)))
        assert back.mode == "RGBA" and np.array_equal(back.alpha, alpha)


def test_exact_decoding_of_a_scaled_file(rng):
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    lat = latformat.unpack(codec.compress(_img(px), 2, scale=levels.SCALED))
    a = codec.decompress(lat, exact=True).pixels
    assert a.shape == px.shape and np.array_equal(a, codec.decompress(lat, exact=True).pixels)


def test_pixel_limit_counts_the_coded_size(rng):
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lat = latformat.unpack(codec.compress(_img(px), 3, scale=levels.SCALED))  # coded at 88 x 88 -> 128 x 128
    codec.decompress(lat, max_pixels=128 * 128)
    with pytest.raises(api.PixelLimitError):
        codec.decompress(lat, max_pixels=128 * 128 - 1)
    codec.decompress(latformat.unpack(codec.compress(_img(px), 3, scale=8)), max_pixels=64 * 64)


def test_scales_the_encoder_does_not_offer(rng, monkeypatch):
    codec = api.load_codec("tiny-hp")
    px = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    with pytest.raises(UserError, match="cannot be coded at scale 11/8"):
        codec.compress(_img(px), 1, scale=levels.SCALED)
    # above MAX_SCALED_PIXELS only the image's own size is tried
    monkeypatch.setattr(levels, "MAX_SCALED_PIXELS", 20 * 30 - 1)
    assert latformat.unpack(codec.compress(_img(px), 3)).scale == 8
    with pytest.raises(UserError, match="cannot be coded"):
        codec.compress(_img(px), 3, scale=levels.SCALED)


def test_a_scaled_quality_1_file_is_refused(rng):
    """Quality 1 has no coarser gain vector: a (crafted) scaled quality-1 file is corrupt."""
    codec = api.load_codec("tiny-hp")
    lat = latformat.unpack(codec.compress(_img(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)), 2,
                                          scale=levels.SCALED))
    bad = latformat.unpack(latformat.pack(latformat.LatFile(**{**lat.__dict__, "quality": 1})))
    with pytest.raises(api.DecodeError, match="no coding at scale 11/8"):
        codec.decompress(bad)


def test_shared_analyses_and_compress_to_fit(rng):
    codec = api.load_codec("tiny-hp")
    img = _img(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    analyses: dict = {}
    files = [codec.compress(img, q, analyses) for q in (1, 2, 3)]
    assert sorted(analyses) == [8, levels.SCALED]
    assert files == [codec.compress(img, q) for q in (1, 2, 3)]
    data, q, fits = codec.compress_to_fit(img, len(files[1]))
    assert fits and len(data) <= len(files[1]) and q >= 2

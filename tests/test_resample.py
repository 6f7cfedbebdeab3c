"""The decoder's downscale, defined bit for bit (aecli/codec/resample.py)."""

import hashlib
import math

import numpy as np
import pytest
from PIL import Image as PILImage

from aecli.codec import resample
from aecli.format import coded_size


def _pillow(px, width, height):
    return np.asarray(PILImage.fromarray(px).resize((width, height), PILImage.LANCZOS))


def test_sin_is_within_two_units_in_the_last_place_of_the_c_library():
    y = np.linspace(-3 * math.pi, 3 * math.pi, 20001)
    ours = resample.sin(y)
    ref = np.array([math.sin(v) for v in y])
    assert np.max(np.abs(ours - ref)) <= 2.3e-16
    assert resample.sin(np.array([0.0]))[0] == 0.0
    assert np.array_equal(resample.sin(-y), -ours)  # odd, exactly


def test_coefficients_are_pinned():
    """The integers of a small case, as the format defines them (a change here changes what every
    scaled file decodes to)."""
    first, kk = resample.coefficients(11, 8)
    assert first.tolist() == [0, 0, 0, 1, 2, 3, 5, 6]
    assert kk.shape == (8, 11)
    assert kk[0, :5].tolist() == [3067955, 1538101, -458744, 27613, 19378]
    assert kk[3, :8].tolist() == [89141, -271469, 122139, 2778392, 1859093, -387775, -30779, 35561]
    assert np.array_equal(kk[7, :5], kk[0, :5][::-1])  # mirror-symmetric
    assert not kk[:, 8:].any()
    first, kk = resample.coefficients(3, 2)
    assert kk[0, :3].tolist() == [2742406, 1754765, -302866]


@pytest.mark.parametrize("width", [1, 2, 7, 53, 768, 1001])
def test_weights_sum_to_one_and_keep_flat_images_flat(width):
    cw, _ = coded_size(width, 1, 11)
    _, kk = resample.coefficients(cw, width)
    assert np.all(np.abs(kk.sum(axis=1) - (1 << resample.PRECISION_BITS)) <= kk.shape[1])
    for value in (0, 1, 127, 254, 255):
        flat = np.full((3, cw, 3), value, np.uint8)
        assert np.all(resample.resize(flat, width, 2) == value)


def test_equals_pillow_resizing_rows_then_columns(rng):
    """Pillow's 8-bit Lanczos is the same algorithm; checked along rows and along columns alone
    (where no pass order is involved) for every 11/8 coded width up to 400 and other scales."""
    for scale in (9, 11, 13, 16):
        for n in list(range(1, 60)) + [97, 128, 255, 399]:
            cn, _ = coded_size(n, 1, scale)
            row = rng.integers(0, 256, (2, cn, 3), dtype=np.uint8)
            assert np.array_equal(resample.resize(row, n, 2), _pillow(row, n, 2)), (scale, n)
            col = rng.integers(0, 256, (cn, 2), dtype=np.uint8)
            assert np.array_equal(resample.resize(col, 2, n), _pillow(col, 2, n)), (scale, n)


@pytest.mark.parametrize("w,h", [(53, 37), (768, 512), (30, 20), (1, 1)])
def test_equals_pillow_on_images_wider_than_tall(rng, w, h):
    cw, ch = coded_size(w, h, 11)
    px = rng.integers(0, 256, (ch, cw, 3), dtype=np.uint8)
    assert np.array_equal(resample.resize(px, w, h), _pillow(px, w, h))


def test_rows_first_then_columns_whatever_the_shape(rng):
    """The order is the format's: rows, then columns (Pillow 13 picks a column-first order for
    some tall images, which rounds differently; the format does not follow a library's choice)."""
    cw, ch = coded_size(24, 395, 11)
    px = rng.integers(0, 256, (ch, cw, 3), dtype=np.uint8)
    rows = resample.resize(px, 24, ch)
    assert np.array_equal(resample.resize(px, 24, 395), resample.resize(rows, 24, 395))


def test_grey_equals_each_channel_and_chunks_change_nothing(rng, monkeypatch):
    px = rng.integers(0, 256, (88, 70, 3), dtype=np.uint8)
    whole = resample.resize(px, 51, 64)
    for c in range(3):
        assert np.array_equal(resample.resize(np.ascontiguousarray(px[:, :, c]), 51, 64), whole[:, :, c])
    monkeypatch.setattr(resample, "_CHUNK", 1)  # one output row at a time
    assert np.array_equal(resample.resize(px, 51, 64), whole)


def test_output_is_pinned():
    """A seeded image's downscale, hashed: the same on every machine and numpy version."""
    px = np.random.default_rng(20261128).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    out = resample.resize(px, 34, 24)
    assert out.shape == (24, 34, 3) and out.dtype == np.uint8
    assert hashlib.sha256(out.tobytes()).hexdigest()[:16] == "e4e93f68590a32ed"


def test_same_size_is_unchanged_and_bad_input_is_refused(rng):
    px = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(resample.resize(px, 6, 5), px)
    with pytest.raises(ValueError):
        resample.resize(px.astype(np.float32), 3, 3)
    with pytest.raises(ValueError):
        resample.coefficients(0, 3)

"""Tests for aecli/images/ (reading, encoding, listing folders) and aecli/atomic.py (writing outputs); no torch needed."""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import features

from aecli import atomic
from aecli.atomic import write_output
from aecli.batch import mirror_path
from aecli.errors import OutputExists, UserError
from aecli.images import decode
from aecli.images.decode import decode_image, read_bytes, read_image
from aecli.images.encode import encode_image, format_from_path
from aecli.images.image import Image
from aecli.images.walk import IMAGE_EXTS, walk_images

RNG = np.random.default_rng(1234)


def pil_bytes(im: PILImage.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(arr: np.ndarray, color_type: int) -> bytes:
    """A minimal 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1).astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def rand(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


# --------------------------------------------------------------------------
# decoding: modes


@pytest.mark.parametrize(
    "mode,pixels_shape,has_alpha",
    [("RGB", (5, 7, 3), False), ("L", (5, 7), False), ("RGBA", (5, 7, 3), True), ("LA", (5, 7), True)],
)
def test_png_round_trip_each_mode(mode, pixels_shape, has_alpha):
    pixels = rand(*pixels_shape)
    alpha = rand(5, 7) if has_alpha else None
    data = encode_image(pixels, "png", alpha=alpha)
    assert PILImage.open(io.BytesIO(data)).mode == mode
    img = decode_image(data, "x.png")
    assert img.mode == mode
    assert img.source_bits == 8
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == pixels_shape
    np.testing.assert_array_equal(img.pixels, pixels)
    if has_alpha:
        np.testing.assert_array_equal(img.alpha, alpha)
    else:
        assert img.alpha is None
    assert img.size == (7, 5) and img.width == 7 and img.height == 5
    # an Image object encodes back to the same pixels
    again = decode_image(encode_image(img, "png"))
    np.testing.assert_array_equal(again.pixels, pixels)
    assert again.mode == mode


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    channels=st.sampled_from([None, 3]),
    with_alpha=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_png_round_trip_property(h, w, channels, with_alpha, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(h, w), dtype=np.uint8) if with_alpha else None
    img = decode_image(encode_image(pixels, "png", alpha=alpha))
    np.testing.assert_array_equal(img.pixels, pixels)
    if with_alpha:
        np.testing.assert_array_equal(img.alpha, alpha)
    else:
        assert img.alpha is None


def test_array_with_alpha_channel_is_split():
    rgba = rand(3, 4, 4)
    img = decode_image(encode_image(rgba, "png"))
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(img.pixels, rgba[:, :, :3])
    np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])
    la = rand(3, 4, 2)
    img = decode_image(encode_image(la, "png"))
    assert img.mode == "LA"
    np.testing.assert_array_equal(img.pixels, la[:, :, 0])


def test_encode_rejects_bad_arrays():
    with pytest.raises(TypeError):
        encode_image(np.zeros((2, 2), np.float32), "png")
    with pytest.raises(ValueError):
        encode_image(np.zeros((2, 2, 5), np.uint8), "png")
    with pytest.raises(ValueError):
        encode_image(np.zeros((2, 2, 3), np.uint8), "png", alpha=np.zeros((3, 3), np.uint8))
    with pytest.raises(UserError):
        encode_image(np.zeros((2, 2, 3), np.uint8), "gif")


def test_palette_with_transparency_becomes_rgba():
    im = PILImage.new("P", (4, 3))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.putpixel((0, 0), 1)
    im.info["transparency"] = 0  # index 0 (red) is transparent
    img = decode_image(pil_bytes(im), "p.png")
    assert img.mode == "RGBA"
    assert img.pixels.shape == (3, 4, 3)
    assert img.alpha[0, 0] == 255 and img.alpha[1, 1] == 0
    assert tuple(img.pixels[0, 0]) == (0, 255, 0)
    assert tuple(img.pixels[1, 1]) == (255, 0, 0)


def test_palette_without_transparency_becomes_rgb():
    im = PILImage.new("P", (4, 3))
    im.putpalette([10, 20, 30] * 256)
    img = decode_image(pil_bytes(im))
    assert img.mode == "RGB" and img.alpha is None
    assert tuple(img.pixels[2, 3]) == (10, 20, 30)


def test_gray_with_trns_keeps_transparency_as_la():
    im = PILImage.new("L", (3, 2), 7)
    im.putpixel((0, 0), 9)
    img = decode_image(pil_bytes(im, transparency=7))
    assert img.mode == "LA"
    assert img.alpha[0, 0] == 255 and img.alpha[1, 1] == 0


def test_bilevel_becomes_l():
    im = PILImage.new("1", (5, 4), 0)
    im.putpixel((1, 2), 1)
    img = decode_image(pil_bytes(im))
    assert img.mode == "L" and img.pixels.dtype == np.uint8
    assert img.pixels[2, 1] == 255 and img.pixels[0, 0] == 0


def test_cmyk_becomes_rgb():
    im = PILImage.new("CMYK", (4, 4), (0, 255, 255, 0))  # red
    img = decode_image(pil_bytes(im, "JPEG", quality=95), "c.jpg")
    assert img.mode == "RGB" and img.pixels.shape == (4, 4, 3)
    r, g, b = (int(v) for v in img.pixels[2, 2])
    assert r > 200 and g < 60 and b < 60


def test_16bit_gray_png_scaled_with_rounding():
    values = np.array([[0, 65535, 128, 129], [257, 32767, 32768, 1000]], dtype=np.uint16)
    im = PILImage.fromarray(values)
    assert im.mode == "I;16"
    img = decode_image(pil_bytes(im), "g16.png")
    assert img.mode == "L" and img.alpha is None
    assert img.source_bits == 16
    assert img.pixels.dtype == np.uint8
    expected = np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(img.pixels, expected)
    assert img.pixels[0, 2] == 0 and img.pixels[0, 3] == 1  # 128 → 0.498, 129 → 0.502


def test_16bit_gray_from_hand_written_png():
    g = np.array([[0, 65535, 32896]], dtype=np.uint16)
    img = decode_image(png16(g, 0))
    assert img.mode == "L" and img.source_bits == 16
    assert img.pixels.tolist() == [[0, 255, 128]]


def test_16bit_rgb_and_rgba_png():
    rgb = RNG.integers(0, 65536, size=(3, 4, 3), dtype=np.uint16)
    img = decode_image(png16(rgb, 2), "rgb16.png")
    assert img.mode == "RGB" and img.source_bits == 16 and img.alpha is None
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (3, 4, 3)
    assert np.abs(img.pixels.astype(int) - rgb.astype(int) * 255 / 65535).max() <= 1.0

    rgba = RNG.integers(0, 65536, size=(3, 4, 4), dtype=np.uint16)
    img = decode_image(png16(rgba, 6))
    assert img.mode == "RGBA" and img.source_bits == 16
    assert img.pixels.shape == (3, 4, 3) and img.alpha.shape == (3, 4)
    assert np.abs(img.alpha.astype(int) - rgba[:, :, 3].astype(int) * 255 / 65535).max() <= 1.0


def test_16bit_la_png_stays_la():
    la = RNG.integers(0, 65536, size=(2, 3, 2), dtype=np.uint16)
    img = decode_image(png16(la, 4))
    assert img.mode == "LA" and img.source_bits == 16
    assert img.pixels.shape == (2, 3)
    assert np.abs(img.pixels.astype(int) - la[:, :, 0].astype(int) * 255 / 65535).max() <= 1.0
    assert np.abs(img.alpha.astype(int) - la[:, :, 1].astype(int) * 255 / 65535).max() <= 1.0


def test_32bit_gray_tiff_becomes_l():
    a = np.array([[0, 65535, -5, 257]], dtype=np.int32)
    im = PILImage.fromarray(a)
    assert im.mode == "I"
    img = decode_image(pil_bytes(im, "TIFF"))
    assert img.mode == "L" and img.source_bits == 16
    assert img.pixels.tolist() == [[0, 255, 0, 1]]


def test_exif_orientation_is_applied():
    # stored 40 wide x 20 high: left half red, right half blue
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    im = PILImage.fromarray(arr)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = pil_bytes(im, "JPEG", exif=exif.tobytes(), quality=95)
    assert PILImage.open(io.BytesIO(data)).size == (40, 20)
    img = decode_image(data, "o.jpg")
    assert img.pixels.shape == (40, 20, 3)
    # rotating clockwise turns the left (red) half into the top half
    assert img.pixels[5, 10, 0] > 200 and img.pixels[5, 10, 2] < 60
    assert img.pixels[35, 10, 2] > 200 and img.pixels[35, 10, 0] < 60


def test_animated_gif_uses_first_frame():
    frames = [PILImage.new("RGB", (6, 5), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = decode_image(buf.getvalue(), "anim.gif")
    assert img.pixels.shape == (5, 6, 3)
    assert tuple(img.pixels[0, 0]) == (255, 0, 0)


# --------------------------------------------------------------------------
# decoding: errors


def test_not_an_image_is_user_error():
    with pytest.raises(UserError, match=r"notes\.txt is not a readable image \("):
        decode_image(b"hello, this is text\n" * 10, "notes.txt")


def test_truncated_image_is_user_error():
    data = encode_image(rand(64, 64, 3), "png")
    with pytest.raises(UserError, match="cut.png is not a readable image"):
        decode_image(data[: len(data) // 2], "cut.png")


def test_decompression_bomb_is_user_error(monkeypatch):
    before = PILImage.MAX_IMAGE_PIXELS
    data = encode_image(np.zeros((20, 30), np.uint8), "png")
    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    with pytest.raises(UserError, match=r"big\.png: image too large \(30 x 20\)"):
        decode_image(data, "big.png")
    assert PILImage.MAX_IMAGE_PIXELS == before  # global limit restored
    monkeypatch.setattr(decode, "MAX_PIXELS", 600)
    assert decode_image(data).pixels.shape == (20, 30)
    assert PILImage.MAX_IMAGE_PIXELS == before


def test_read_missing_file(tmp_path):
    p = tmp_path / "nope.png"
    with pytest.raises(UserError, match="input not found: .*nope.png"):
        read_image(p)


def test_read_directory(tmp_path):
    with pytest.raises(UserError) as ei:
        read_bytes(tmp_path)
    assert str(tmp_path) in str(ei.value) and "is a directory" in str(ei.value)


def test_read_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(UserError, match=r"empty\.png is empty"):
        read_image(str(p))


def test_read_garbage_file_names_the_path(tmp_path):
    p = tmp_path / "junk.jpg"
    p.write_bytes(b"\x00\x01garbage" * 20)
    with pytest.raises(UserError) as ei:
        read_image(p)
    assert str(p) in str(ei.value) and "not a readable image" in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_unreadable_file(tmp_path):
    p = tmp_path / "secret.png"
    p.write_bytes(b"x")
    p.chmod(0)
    try:
        with pytest.raises(UserError, match="cannot read .*secret.png"):
            read_bytes(p)
    finally:
        p.chmod(0o600)


def test_read_file_ok(tmp_path):
    pixels = rand(4, 5, 3)
    p = tmp_path / "ok.png"
    p.write_bytes(encode_image(pixels, "png"))
    np.testing.assert_array_equal(read_image(p).pixels, pixels)
    np.testing.assert_array_equal(read_image(str(p)).pixels, pixels)


# --------------------------------------------------------------------------
# stdin / stdout


def test_read_from_stdin(monkeypatch):
    pixels = rand(3, 3, 3)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(encode_image(pixels, "png"))))
    img = read_image("-")
    np.testing.assert_array_equal(img.pixels, pixels)


def test_empty_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(UserError, match="<stdin> is empty"):
        read_bytes("-")


def test_garbage_stdin_is_named_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not an image at all")))
    with pytest.raises(UserError, match="<stdin> is not a readable image"):
        read_image("-")


def test_write_to_stdout(monkeypatch, tmp_path):
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
    data = encode_image(rand(2, 2, 3), "png")
    write_output("-", data, inputs=["-"], force=False)
    assert raw.getvalue() == data
    assert list(tmp_path.iterdir()) == []
    assert not Path("-").exists()


def test_stdout_tty_refused(monkeypatch):
    class Tty(io.TextIOWrapper):
        def isatty(self):
            return True

    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", Tty(raw))
    with pytest.raises(UserError, match="terminal"):
        write_output("-", b"abc")
    assert raw.getvalue() == b""


# --------------------------------------------------------------------------
# write_output


def test_write_creates_parents_and_file(tmp_path):
    dst = tmp_path / "a" / "b" / "out.png"
    write_output(dst, b"hello")
    assert dst.read_bytes() == b"hello"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["out.png"]


def test_write_refuses_same_file_as_input(tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    src = tmp_path / "x" / "in.png"
    src.write_bytes(b"original")
    monkeypatch.chdir(tmp_path)
    for spelling in ["x/in.png", "./x/../x/in.png", str(src), Path("x") / "." / "in.png"]:
        with pytest.raises(UserError, match="same file as the input"):
            write_output(spelling, b"new", inputs=[src], force=True)
    with pytest.raises(UserError, match="same file as the input"):
        write_output(src, b"new", inputs=["other.png", "./x/../x/in.png"])
    assert src.read_bytes() == b"original"


def test_write_refuses_symlink_to_input(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"original")
    link = tmp_path / "link.png"
    try:
        link.symlink_to(src)
    except OSError:
        pytest.skip("symlinks not supported")
    with pytest.raises(UserError, match="same file"):
        write_output(link, b"new", inputs=[src])
    assert src.read_bytes() == b"original"


def test_write_same_name_as_nonexistent_input_is_refused(tmp_path):
    dst = tmp_path / "new.png"
    with pytest.raises(UserError, match="same file"):
        write_output(dst, b"x", inputs=[tmp_path / "sub" / ".." / "new.png"])
    assert not dst.exists()


def test_output_exists_without_force(tmp_path):
    dst = tmp_path / "out.png"
    dst.write_bytes(b"old")
    with pytest.raises(OutputExists) as ei:
        write_output(dst, b"new", force=False)
    assert isinstance(ei.value, UserError)
    assert str(dst) in str(ei.value)
    assert dst.read_bytes() == b"old"
    write_output(dst, b"new", force=True)
    assert dst.read_bytes() == b"new"
    # not existing + force=False is fine
    write_output(tmp_path / "fresh.png", b"f", force=False)
    assert (tmp_path / "fresh.png").read_bytes() == b"f"


def test_write_onto_directory_is_user_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="directory"):
        write_output(tmp_path / "d", b"x")


def test_write_is_atomic_when_replace_fails(tmp_path, monkeypatch):
    dst = tmp_path / "out.png"

    def boom(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(UserError, match=r"cannot write .*out\.png: No space left on device"):
        write_output(dst, b"data")
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []  # no leftover temp file

    dst.write_bytes(b"old")
    with pytest.raises(UserError, match="No space left"):
        write_output(dst, b"data", force=True)
    assert dst.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_keyboard_interrupt_removes_temp(tmp_path, monkeypatch):
    seen = []

    def interrupted(fd):
        seen.extend(p.name for p in tmp_path.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_output(tmp_path / "out.png", b"data")
    assert len(seen) == 1 and seen[0].startswith(".out.png.") and seen[0].endswith(".tmp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_write_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        dst = tmp_path / "new.png"
        write_output(dst, b"x")
        assert stat.S_IMODE(dst.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    # an existing file keeps its mode
    dst.chmod(0o604)
    write_output(dst, b"y", force=True)
    assert stat.S_IMODE(dst.stat().st_mode) == 0o604
    assert dst.read_bytes() == b"y"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_write_permission_denied_is_user_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match=r"cannot write .*out\.png"):
            write_output(ro / "out.png", b"x")
        with pytest.raises(UserError, match="cannot write"):
            write_output(ro / "sub" / "out.png", b"x")
    finally:
        ro.chmod(0o700)
    assert list(ro.iterdir()) == []


def test_write_permission_error_from_mkstemp(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(UserError, match=r"cannot write .*out\.png: Permission denied"):
        write_output(tmp_path / "out.png", b"x")
    assert list(tmp_path.iterdir()) == []


def test_write_parent_is_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(UserError, match="cannot write"):
        write_output(tmp_path / "f" / "out.png", b"x")


def test_write_through_symlink_keeps_link(tmp_path):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("symlinks not supported")
    write_output(link, b"new", force=True)
    assert link.is_symlink()
    assert target.read_bytes() == b"new"


# --------------------------------------------------------------------------
# encoding formats


def test_encode_formats_decode_back():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = 200
    alpha = np.full((8, 8), 128, np.uint8)
    fmts = ["png", "jpeg", "jpg", "tiff", "tif", "bmp"]
    if features.check("webp"):
        fmts.append("webp")
    for fmt in fmts:
        img = decode_image(encode_image(rgb, fmt, alpha=alpha), f"x.{fmt}")
        assert img.pixels.shape == (8, 8, 3), fmt
        if fmt in ("jpeg", "jpg", "bmp"):
            assert img.mode == "RGB" and img.alpha is None  # JPEG/BMP drop alpha
            if fmt == "bmp":
                np.testing.assert_array_equal(img.pixels, rgb)
        else:
            assert img.mode == "RGBA", fmt
            if fmt != "webp":
                np.testing.assert_array_equal(img.alpha, alpha)
                np.testing.assert_array_equal(img.pixels, rgb)


def test_encode_la_to_bmp_and_gray_to_jpeg():
    gray = rand(6, 6)
    img = decode_image(encode_image(gray, "bmp", alpha=rand(6, 6)))
    assert img.mode == "L" and img.alpha is None
    np.testing.assert_array_equal(img.pixels, gray)
    img = decode_image(encode_image(gray, "jpeg", alpha=rand(6, 6)))
    assert img.mode == "L" and img.alpha is None


def test_encode_passes_options():
    x = rand(32, 32, 3)
    assert len(encode_image(x, "jpeg", quality=10)) < len(encode_image(x, "jpeg", quality=95))


def test_format_from_path():
    assert format_from_path("a.png") == "png"
    assert format_from_path("a.JPG") == "jpeg"
    assert format_from_path(Path("d/a.jpeg")) == "jpeg"
    assert format_from_path("a.tif") == "tiff"
    assert format_from_path("a.TIFF") == "tiff"
    assert format_from_path("a.webp") == "webp"
    assert format_from_path("a.bmp") == "bmp"
    assert format_from_path("-") == "png"
    assert format_from_path("-", default="jpg") == "jpeg"
    assert format_from_path("noext") == "png"
    with pytest.raises(UserError, match=r"\.xyz"):
        format_from_path("a.xyz")
    with pytest.raises(UserError, match=r"\.gif"):
        format_from_path("a.gif")


# --------------------------------------------------------------------------
# batches


def test_walk_images(tmp_path):
    files = [
        "b.PNG",
        "a.jpg",
        "sub/c.JpEg",
        "sub/deeper/d.webp",
        "sub-x/e.tif",
        "z.bmp",
        "img.Gif",
        "p.ppm",
    ]
    skipped = [".hidden.png", "sub/.also.png", ".git/x.png", "sub/.cache/y.png", "notes.txt", "sub/model.lat", "png"]
    for name in files + skipped:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()  # a directory named like an image is not a file
    got = walk_images(tmp_path)
    assert all(isinstance(p, Path) for p in got)
    rel = [p.relative_to(tmp_path).as_posix() for p in got]
    assert rel == ["a.jpg", "b.PNG", "img.Gif", "p.ppm", "sub/c.JpEg", "sub/deeper/d.webp", "sub-x/e.tif", "z.bmp"]
    assert got == sorted(got)


def test_walk_images_hidden_root_is_walked(tmp_path):
    root = tmp_path / ".data"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    assert walk_images(root) == [root / "a.png"]


def test_walk_images_errors(tmp_path):
    with pytest.raises(UserError, match="input not found"):
        walk_images(tmp_path / "missing")
    f = tmp_path / "f.png"
    f.write_bytes(b"x")
    with pytest.raises(UserError, match="not a directory"):
        walk_images(f)
    assert walk_images(tmp_path / ".") == [tmp_path / "." / "f.png"]


def test_image_exts_constant():
    assert IMAGE_EXTS == (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm")


def test_mirror_path(tmp_path):
    src_root = tmp_path / "in"
    dst_root = tmp_path / "out"
    assert mirror_path(src_root / "a" / "b.png", src_root, dst_root, ".lat") == dst_root / "a" / "b.lat"
    assert mirror_path(src_root / "c.JPG", src_root, dst_root, "png") == dst_root / "c.png"
    assert mirror_path(src_root / "x.tar.png", src_root, dst_root, ".lat") == dst_root / "x.tar.lat"
    assert mirror_path(Path("in/a.png"), Path("in"), Path("o"), ".lat") == Path("o/a.lat")
    with pytest.raises(ValueError):
        mirror_path(tmp_path / "elsewhere" / "a.png", src_root, dst_root, ".lat")


def test_image_dataclass_fields():
    img = Image(pixels=np.zeros((2, 3), np.uint8), alpha=None, mode="L", source_bits=8)
    assert img.size == (3, 2) and not img.has_alpha
    assert img.to_pil().mode == "L"

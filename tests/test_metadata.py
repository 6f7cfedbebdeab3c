"""Metadata (ICC profile, EXIF, XMP) in .lat files: the format's optional table (docs/format.md,
"Metadata"), its test vector, and compress/decompress/info carrying it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from typer.testing import CliRunner

from aecli import format as fmt
from aecli.cli import app
from aecli.format import FormatError, LatFile, pack, unpack

from conftest import VECTORS, photo_like

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
runner = CliRunner()
BASE = LatFile("hp-mse", bytes.fromhex("1a2b3c4d"), 4, 300, 200, "RGB", (b"\x07\x08\x09", b"hello", b""))
SPEC_HEX = ("41454c010104ac02c8010668702d6d73651a2b3c4d83030500020104030407080968656c6c6f494343213c782f3efe6adece")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def err(data) -> str:
    with pytest.raises(FormatError) as exc:
        unpack(data)
    assert "\n" not in str(exc.value)
    return str(exc.value)


@st.composite
def with_metadata(draw):
    kinds = draw(st.lists(st.sampled_from(["icc", "exif", "xmp"]), min_size=1, max_size=3, unique=True))
    kinds = [k for k in ("icc", "exif", "xmp") if k in kinds]
    meta = tuple((k, draw(st.binary(min_size=1, max_size=40))) for k in kinds)
    streams = tuple(draw(st.lists(st.binary(max_size=12), max_size=fmt.MAX_STREAMS)))
    return dataclasses.replace(BASE, streams=streams, metadata=meta, scale=draw(st.sampled_from([8, 11])))


# --------------------------------------------------------------------------- the format


def test_spec_example_with_metadata():
    lat = dataclasses.replace(BASE, metadata=(("icc", b"ICC!"), ("xmp", b"<x/>")))
    data = pack(lat)
    assert data.hex() == SPEC_HEX and len(data) == lat.file_size() == 50
    assert unpack(data) == lat and unpack(data).meta() == {"icc": b"ICC!", "xmp": b"<x/>"}
    assert fmt.describe(lat)["metadata"] == {"icc": 4, "xmp": 4}
    assert SPEC_HEX in (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text(encoding="utf-8")


def test_a_file_without_metadata_is_unchanged():
    assert pack(BASE) == pack(dataclasses.replace(BASE, metadata=()))
    assert "metadata" not in fmt.describe(BASE)
    assert pack(BASE)[0x15] == 3  # the stream count byte, flag clear


@SETTINGS
@given(with_metadata())
def test_property_round_trip(lat):
    data = pack(lat)
    assert unpack(data) == lat and len(data) == lat.file_size()
    stripped = dataclasses.replace(lat, metadata=())
    assert unpack(pack(stripped)).streams == lat.streams


@SETTINGS
@given(with_metadata())
def test_property_every_truncation_says_truncated(lat):
    data = pack(lat)
    for n in range(len(data)):
        assert "truncated" in err(data[:n]), n


@SETTINGS
@given(with_metadata(), st.data())
def test_property_single_byte_change_detected(lat, data_st):
    data = pack(lat)
    pos = data_st.draw(st.integers(0, len(data) - 1))
    new = data_st.draw(st.integers(0, 255).filter(lambda b: b != data[pos]))
    err(data[:pos] + bytes([new]) + data[pos + 1:])


@SETTINGS
@given(with_metadata(), st.binary(min_size=1, max_size=20))
def test_property_appended_bytes_refused(lat, extra):
    assert "trailing bytes" in err(pack(lat) + extra)


@SETTINGS
@given(st.binary(max_size=60))
def test_property_arbitrary_table_only_format_error(tail):
    head = pack(BASE)[:0x15] + bytes([0x83, 3, 5, 0])  # up to the stream lengths, with the flag
    data = head + tail
    try:
        lat = unpack(data)
    except FormatError:
        return
    assert pack(lat) == data  # anything accepted is canonical


def _with_table(table: bytes, payload: bytes = b"") -> bytes:
    import zlib

    body = pack(BASE)[:0x15] + bytes([0x83, 3, 5, 0]) + table + b"\x07\x08\x09hello" + payload
    return body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


@pytest.mark.parametrize("table,payload,needle", [
    (b"\x00", b"", "invalid metadata entry count 0"),
    (b"\x04\x01\x01\x02\x01\x03\x01\x03\x01", b"abcd", "invalid metadata entry count 4"),
    (b"\x01\x04\x01", b"a", "invalid metadata kind 4"),
    (b"\x01\x00\x01", b"a", "invalid metadata kind 0"),
    (b"\x02\x02\x01\x01\x01", b"ab", "invalid metadata kind 1"),
    (b"\x02\x01\x01\x01\x01", b"ab", "invalid metadata kind 1"),
    (b"\x01\x01\x00", b"", "empty metadata entry"),
    (b"\x01\x01\x80\x00", b"a", "non-minimal varint"),
    (b"\x01\x01\x05", b"abc", "truncated"),
    (b"\x01\x01\x02", b"abc", "trailing bytes"),
])
def test_table_errors(table, payload, needle):
    assert needle in err(_with_table(table, payload))
    assert unpack(_with_table(b"\x01\x01\x03", b"abc")).meta() == {"icc": b"abc"}


@pytest.mark.parametrize("metadata,needle", [
    ((("exif", b"a"), ("icc", b"b")), "order"),
    ((("icc", b"a"), ("icc", b"b")), "order"),
    ((("gps", b"a"),), "name of"),
    ((("icc", b""),), "1.."),
    ((("icc", "text"),), "name of"),
    ({"icc": b"a"}, "pairs"),
    (b"icc", "pairs"),
])
def test_pack_refuses_bad_metadata(metadata, needle):
    with pytest.raises(FormatError) as exc:
        pack(dataclasses.replace(BASE, metadata=metadata))
    assert needle in str(exc.value)


def test_vector_small_meta():
    """small-meta.lat is small.lat with a metadata table: the same streams, and so the same pixels."""
    small, meta = (VECTORS / "small.lat").read_bytes(), (VECTORS / "small-meta.lat").read_bytes()
    lat = unpack(meta)
    assert [k for k, _ in lat.metadata] == ["icc", "exif", "xmp"]
    assert pack(dataclasses.replace(lat, metadata=())) == small
    from scripts import make_test_vectors

    assert lat.metadata == make_test_vectors.vector_metadata() and pack(lat) == meta


def test_vector_small_meta_decodes_to_the_pixels_of_small(tmp_path):
    out = tmp_path / "m.png"
    r = run("decompress", VECTORS / "small-meta.lat", "-o", out)
    assert r.exit_code == 0, r.output
    with PILImage.open(out) as im, PILImage.open(VECTORS / "small.decoded.png") as ref:
        assert np.array_equal(np.asarray(im), np.asarray(ref))
        assert im.info["icc_profile"] == unpack((VECTORS / "small-meta.lat").read_bytes()).meta()["icc"]
        assert im.getexif()[0x010F] == "aecli"


# --------------------------------------------------------------------------- the command line


_PROFILE: list = []


def _srgb() -> bytes:
    """An sRGB profile (made once: its header holds the time it was made)."""
    if not _PROFILE:
        from PIL import ImageCms

        _PROFILE.append(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    return _PROFILE[0]


@pytest.fixture
def phone_jpeg(tmp_path, rng):
    """A JPEG as a phone writes it: an ICC profile, EXIF with a camera name and orientation 6
    (rotate 90 degrees to view), and XMP."""
    px = photo_like(32, 48, rng)
    exif = PILImage.Exif()
    exif[0x0112], exif[0x010F] = 6, "PhoneMaker"
    path = tmp_path / "phone.jpg"
    PILImage.fromarray(px).save(path, quality=95, icc_profile=_srgb(), exif=exif.tobytes(),
                                xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    return path


def test_compress_keeps_icc_and_exif_by_default_and_decompress_restores_them(tmp_path, phone_jpeg):
    lat_path = tmp_path / "p.lat"
    r = run("compress", phone_jpeg, "-o", lat_path, "-m", "tiny-hp")
    assert r.exit_code == 0, r.output
    assert "with icc+exif" in r.stderr
    lat = unpack(lat_path.read_bytes())
    assert (lat.width, lat.height) == (32, 48)  # orientation applied to the pixels
    meta = lat.meta()
    assert set(meta) == {"icc", "exif"} and meta["icc"] == _srgb()
    exif = PILImage.Exif()
    exif.load(meta["exif"])
    assert exif[0x010F] == "PhoneMaker" and 0x0112 not in exif
    info = run("info", lat_path)
    assert "ICC profile" in info.stdout and "EXIF" in info.stdout
    [d] = json.loads(run("info", lat_path, "--json").stdout)
    assert set(d["metadata"]) == {"icc", "exif"}
    for ext in ("png", "jpg", "webp", "tiff"):
        out = tmp_path / f"back.{ext}"
        r = run("decompress", lat_path, "-o", out)
        assert r.exit_code == 0, r.output
        with PILImage.open(out) as im:
            assert im.size == (32, 48) and im.info.get("icc_profile") == _srgb(), ext
            assert im.getexif().get(0x010F) == "PhoneMaker" and im.getexif().get(0x0112) is None, ext


def test_metadata_option(tmp_path, phone_jpeg):
    for choice, kinds in (("all", {"icc", "exif", "xmp"}), ("xmp", {"xmp"}), ("icc,exif", {"icc", "exif"}),
                          ("none", set())):
        out = tmp_path / f"{choice}.lat"
        r = run("compress", phone_jpeg, "-o", out, "-m", "tiny-hp", "--metadata", choice)
        assert r.exit_code == 0, r.output
        assert set(unpack(out.read_bytes()).meta()) == kinds, choice
    # none: the same bytes as the same pixels from a file without metadata
    with PILImage.open(phone_jpeg) as im:
        from PIL import ImageOps

        bare = ImageOps.exif_transpose(im)
        bare.info = {}
        bare.save(tmp_path / "bare.png")
    run("compress", tmp_path / "bare.png", "-o", tmp_path / "bare.lat", "-m", "tiny-hp")
    assert (tmp_path / "none.lat").read_bytes() == (tmp_path / "bare.lat").read_bytes()
    r = run("compress", phone_jpeg, "-o", tmp_path / "x.lat", "-m", "tiny-hp", "--metadata", "gps")
    assert r.exit_code == 1 and "unknown kind 'gps'" in r.stderr
    r = run("decompress", tmp_path / "all.lat", "-o", tmp_path / "all.png")
    with PILImage.open(tmp_path / "all.png") as im:
        im.load()
        assert "adobe:ns:meta" in im.info.get("XML:com.adobe.xmp", "")


def test_cmyk_profile_is_not_attached_to_rgb_pixels(tmp_path, rng):
    icc = bytearray(_srgb())
    icc[16:20] = b"CMYK"
    path = tmp_path / "cmyk.jpg"
    PILImage.fromarray(photo_like(16, 16, rng)).convert("CMYK").save(path, icc_profile=bytes(icc))
    r = run("compress", path, "-o", tmp_path / "c.lat", "-m", "tiny-hp", "--metadata", "all")
    assert r.exit_code == 0, r.output
    assert "icc" not in unpack((tmp_path / "c.lat").read_bytes()).meta()


def test_metadata_a_format_cannot_hold_is_dropped_with_a_warning(tmp_path, rng):
    lat = unpack((VECTORS / "small.lat").read_bytes())
    big = dataclasses.replace(lat, metadata=(("exif", b"Exif\0\0" + bytes(70000)),))
    (tmp_path / "big.lat").write_bytes(pack(big))
    r = run("decompress", tmp_path / "big.lat", "-o", tmp_path / "big.jpg")
    assert r.exit_code == 0, r.output
    assert "cannot be written into jpeg" in r.stderr
    with PILImage.open(tmp_path / "big.jpg") as im:
        assert im.size == (lat.width, lat.height)

"""Tests for the .lat container (aecli/format.py, spec in docs/format.md)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecli import format as fmt
from aecli.format import (
    MAGIC,
    MAX_NAME,
    MAX_PIXELS,
    MAX_SIDE,
    MAX_STREAMS,
    MODES,
    VERSION,
    FormatError,
    LatFile,
    describe,
    is_lat,
    pack,
    unpack,
)

SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# The example file from docs/format.md.
EXAMPLE = LatFile(
    model="hp-mse",
    fingerprint=bytes.fromhex("1a2b3c4d"),
    quality=4,
    width=300,
    height=200,
    mode="RGB",
    streams=(b"\x07\x08\x09", b"hello", b""),
)
EXAMPLE_HEX = (
    "41454c01"  # magic "AEL", version 1
    "01"  # mode RGB
    "04"  # quality 4
    "ac02"  # width 300
    "c801"  # height 200
    "06" "68702d6d7365"  # name "hp-mse"
    "1a2b3c4d"  # fingerprint
    "03" "03" "05" "00"  # 3 streams of 3, 5, 0 bytes
    "070809" "68656c6c6f"  # payloads
    "4d825dee"  # CRC-32
)


# --------------------------------------------------------------------------- helpers


def varint(v: int) -> bytes:
    """Independent LEB128 encoder (no minimality/size checks, for crafting bad input)."""
    out = bytearray()
    while True:
        if v < 0x80:
            out.append(v)
            return bytes(out)
        out.append((v & 0x7F) | 0x80)
        v >>= 7


def raw(
    *,
    magic=MAGIC,
    version=1,
    mode=1,
    quality=50,
    width=b"\x10",
    height=b"\x10",
    name=b"m",
    name_len=None,
    fingerprint=b"\0\0\0\0",
    lengths=None,
    payload=b"",
    crc=True,
) -> bytes:
    """Build a file byte by byte, independently of pack(); int width/height are varint-encoded."""
    if isinstance(width, int):
        width = varint(width)
    if isinstance(height, int):
        height = varint(height)
    if lengths is None:
        lengths = [varint(len(payload))] if payload else []
    body = (
        magic
        + bytes([version, mode, quality])
        + width
        + height
        + bytes([len(name) if name_len is None else name_len])
        + name
        + fingerprint
        + bytes([len(lengths)])
        + b"".join(x if isinstance(x, bytes) else varint(x) for x in lengths)
        + payload
    )
    if crc:
        body += (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")
    return body


def err(data) -> str:
    with pytest.raises(FormatError) as exc:
        unpack(data)
    msg = str(exc.value)
    assert "\n" not in msg and 0 < len(msg) < 120
    return msg


NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


@st.composite
def lat_files(draw, max_stream=64):
    width = draw(
        st.one_of(
            st.integers(1, 300),
            st.sampled_from([127, 128, 16383, 16384, MAX_SIDE]),
            st.integers(1, MAX_SIDE),
        )
    )
    max_h = min(MAX_SIDE, MAX_PIXELS // width)
    height = draw(st.one_of(st.integers(1, min(300, max_h)), st.integers(1, max_h)))
    return LatFile(
        model=draw(st.text(NAME_ALPHABET, min_size=1, max_size=MAX_NAME)),
        fingerprint=draw(st.binary(min_size=4, max_size=4)),
        quality=draw(st.integers(1, 255)),
        width=width,
        height=height,
        mode=draw(st.sampled_from(MODES)),
        streams=tuple(
            draw(st.lists(st.binary(max_size=max_stream), max_size=MAX_STREAMS))
        ),
        scale=draw(st.one_of(st.just(8), st.integers(8, 16))),
    )


# --------------------------------------------------------------------------- exact bytes


def test_example_exact_bytes():
    data = pack(EXAMPLE)
    assert data.hex() == EXAMPLE_HEX
    assert data == raw(
        mode=1,
        quality=4,
        width=300,
        height=200,
        name=b"hp-mse",
        fingerprint=bytes.fromhex("1a2b3c4d"),
        lengths=[3, 5, 0],
        payload=b"\x07\x08\x09hello",
    )
    assert unpack(bytes.fromhex(EXAMPLE_HEX)) == EXAMPLE


def test_example_sizes_and_describe():
    assert EXAMPLE.header_size() == 29
    assert EXAMPLE.num_pixels == 60000
    d = describe(EXAMPLE)
    assert d == {
        "model": "hp-mse",
        "fingerprint": "1a2b3c4d",
        "quality": 4,
        "width": 300,
        "height": 200,
        "mode": "RGB",
        "version": 1,
        "kind": "autoencoder",
        "coded_scale": 1.0,
        "coded_width": 300,
        "coded_height": 200,
        "file_bytes": 37,
        "header_bytes": 29,
        "stream_bytes": [3, 5, 0],
        "bpp": 8 * 37 / 60000,
    }
    json.dumps(d)


def test_minimal_file():
    lat = LatFile("a", b"\xff" * 4, 1, 1, 1, "L", ())
    data = pack(lat)
    assert len(data) == fmt.MIN_SIZE == 19
    assert data[:-4].hex() == "41454c01" "00" "01" "01" "01" "01" "61" "ffffffff" "00"
    assert unpack(data) == lat
    assert lat.header_size() == 19


@pytest.mark.parametrize(
    "value,encoded",
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        (MAX_SIDE, "808040"),
        (0x0FFFFFFF, "ffffff7f"),
        (0x10000000, "8080808001"),
        (0xFFFFFFFF, "ffffffff0f"),
    ],
)
def test_varint_encoding(value, encoded):
    assert fmt.encode_varint(value).hex() == encoded
    assert varint(value).hex() == encoded
    assert fmt._varint_size(value) == len(encoded) // 2


def test_varint_encode_range():
    with pytest.raises(FormatError):
        fmt.encode_varint(-1)
    with pytest.raises(FormatError):
        fmt.encode_varint(1 << 32)


def test_dims_use_varints():
    lat = dataclasses.replace(EXAMPLE, width=MAX_SIDE, height=MAX_PIXELS // MAX_SIDE, streams=())
    data = pack(lat)
    assert data[6:9] == bytes.fromhex("808040")  # 2**20
    assert data[9:11] == bytes.fromhex("8002")  # 256
    assert unpack(data) == lat


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_each_mode(mode):
    lat = dataclasses.replace(EXAMPLE, mode=mode)
    data = pack(lat)
    assert data[4] == MODES.index(mode)
    out = unpack(data)
    assert out == lat and out.mode == mode


def test_round_trip_large_stream_and_bytes_like_input():
    big = bytes(range(256)) * 1000
    lat = dataclasses.replace(EXAMPLE, streams=(big, b"", b"x" * 200))
    data = pack(lat)
    assert unpack(bytearray(data)) == lat
    assert unpack(memoryview(data)) == lat
    assert len(data) == lat.header_size() + len(big) + 200
    assert describe(lat)["file_bytes"] == len(data)


def test_unpack_returns_plain_types():
    out = unpack(pack(EXAMPLE))
    assert type(out.streams) is tuple
    assert all(type(s) is bytes for s in out.streams)
    assert type(out.fingerprint) is bytes and type(out.model) is str


@SETTINGS
@given(lat_files())
def test_property_round_trip(lat):
    data = pack(lat)
    assert unpack(data) == lat
    assert pack(unpack(data)) == data
    assert len(data) == lat.header_size() + sum(len(s) for s in lat.streams)
    d = describe(lat)
    assert d["file_bytes"] == len(data)
    assert d["header_bytes"] + sum(d["stream_bytes"]) == len(data)
    assert d["bpp"] == 8 * len(data) / (lat.width * lat.height)
    assert is_lat(data)


@SETTINGS
@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_only_format_error(data):
    try:
        lat = unpack(data)
    except FormatError as e:
        assert "\n" not in str(e)
    else:
        assert pack(lat) == data  # anything accepted is canonical


@SETTINGS
@given(st.binary(max_size=120))
def test_property_arbitrary_after_valid_prefix(tail):
    # Get past the magic/version checks so the fuzzing reaches the field parsers.
    for head in (MAGIC + bytes([1]), MAGIC + bytes([2]), pack(EXAMPLE)[:12]):
        data = head + tail
        try:
            lat = unpack(data)
        except FormatError:
            pass
        else:
            assert pack(lat) == data


@SETTINGS
@given(lat_files(max_stream=16))
def test_property_every_truncation_says_truncated(lat):
    data = pack(lat)
    for n in range(len(data)):
        assert "truncated" in err(data[:n]), n


@SETTINGS
@given(lat_files(max_stream=16), st.data())
def test_property_single_byte_change_detected(lat, data_st):
    data = pack(lat)
    pos = data_st.draw(st.integers(0, len(data) - 1))
    new = data_st.draw(st.integers(0, 255).filter(lambda b: b != data[pos]))
    bad = data[:pos] + bytes([new]) + data[pos + 1 :]
    err(bad)


def test_every_single_byte_change_of_example_detected():
    data = pack(EXAMPLE)
    for pos in range(len(data)):
        for new in range(256):
            if new != data[pos]:
                err(data[:pos] + bytes([new]) + data[pos + 1 :])


@SETTINGS
@given(lat_files(max_stream=16), st.binary(min_size=1, max_size=40))
def test_property_appended_bytes_refused(lat, extra):
    msg = err(pack(lat) + extra)
    assert "trailing bytes" in msg


# --------------------------------------------------------------------------- unpack errors


def test_empty_and_partial_magic_are_truncated():
    assert "truncated" in err(b"")
    assert "truncated" in err(b"A")
    assert "truncated" in err(b"AE")
    assert "truncated" in err(b"AEL")
    assert "truncated" in err(b"AEL\x01")


@pytest.mark.parametrize("data", [b"X", b"PNG\x89", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, b"AEX\x01" + b"\0" * 30])
def test_bad_magic(data):
    assert err(data) == "not a .lat file (bad magic)"


def test_unsupported_version():
    assert err(raw(version=4)) == "unsupported .lat version 4"
    assert err(raw(version=0)) == "unsupported .lat version 0"
    assert err(b"AEL\x07") == "unsupported .lat version 7"


def test_sanity_raw_builder_is_valid():
    assert unpack(raw()) == LatFile("m", b"\0\0\0\0", 50, 16, 16, "RGB", ())
    assert unpack(raw(payload=b"abc")).streams == (b"abc",)


@pytest.mark.parametrize("mode", [0x10, 0x81, 0xF0])
def test_reserved_mode_bits(mode):
    assert "reserved" in err(raw(mode=mode))  # version 1: the high bits must be 0


@pytest.mark.parametrize("scale", range(9, 17))
def test_version_2_carries_the_coding_scale(scale):
    lat = unpack(raw(version=2, mode=(scale - 8) << 4 | 2))
    assert (lat.scale, lat.mode) == (scale, "RGBA")
    assert pack(lat) == raw(version=2, mode=(scale - 8) << 4 | 2)  # written back byte for byte
    assert describe(lat)["coded_scale"] == scale / 8 and describe(lat)["version"] == 2
    assert (describe(lat)["coded_width"], describe(lat)["coded_height"]) == (-(-16 * scale // 8),) * 2


def test_version_2_example_of_the_spec():
    lat = dataclasses.replace(EXAMPLE, scale=11)
    want = "41454c023104ac02c8010668702d6d73651a2b3c4d0303050007080968656c6c6f1b36d4fa"
    assert pack(lat).hex() == want and unpack(bytes.fromhex(want)) == lat


def test_a_file_is_written_in_the_lowest_version_that_holds_it():
    assert pack(LatFile("m", b"\0" * 4, 3, 10, 10, "RGB"))[3] == 1
    assert pack(LatFile("m", b"\0" * 4, 3, 10, 10, "RGB", scale=11))[3:5] == bytes([2, 0x31])


@pytest.mark.parametrize("mode,msg", [(0x01, "invalid coding scale code 0"), (0x91, "invalid coding scale code 9"),
                                      (0xF1, "invalid coding scale code 15"), (0x35, "unknown color mode code 5")])
def test_version_2_mode_byte_errors(mode, msg):
    # a scale code of 0 would be a second encoding of a version 1 file: refused, so that every
    # LatFile has exactly one encoding
    assert err(raw(version=2, mode=mode)).startswith(msg)


@pytest.mark.parametrize("scale", [7, 17, 0, 8.0, None])
def test_pack_refuses_a_bad_scale(scale):
    with pytest.raises(FormatError, match="coding scale"):
        pack(LatFile("m", b"\0" * 4, 3, 10, 10, "RGB", scale=scale))


@pytest.mark.parametrize("mode", [4, 5, 15])
def test_unknown_mode_code(mode):
    assert "mode" in err(raw(mode=mode))


def test_quality_zero():
    assert "quality" in err(raw(quality=0))


@pytest.mark.parametrize("w,h", [(0, 5), (5, 0), (0, 0)])
def test_zero_dims(w, h):
    assert f"{w}x{h}" in err(raw(width=w, height=h))


def test_side_limit():
    assert "per side" in err(raw(width=MAX_SIDE + 1, height=1))
    assert "per side" in err(raw(width=1, height=MAX_SIDE + 1))
    unpack(raw(width=MAX_SIDE, height=1))


def test_pixel_limit_boundary():
    unpack(raw(width=1 << 14, height=1 << 14))  # exactly MAX_PIXELS
    assert "exceeds" in err(raw(width=(1 << 14) + 1, height=1 << 14))


def test_huge_dims_refused_without_allocating():
    # 100000x100000 header that also claims a 4 GiB stream and carries no payload.
    data = raw(width=100000, height=100000, lengths=[0xFFFFFFFF] * 8, crc=False)
    tracemalloc.start()
    try:
        msg = err(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert msg == f"image size 100000x100000 exceeds the limit of {MAX_PIXELS} pixels"
    assert peak < 64 * 1024


def test_huge_stream_length_claim_is_truncated_without_allocating():
    data = raw(lengths=[0xFFFFFFFF] * 8, crc=True)
    tracemalloc.start()
    try:
        msg = err(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "truncated" in msg
    assert peak < 64 * 1024


def test_non_minimal_varints():
    assert "non-minimal" in err(raw(width=b"\x90\x00"))
    assert "non-minimal" in err(raw(height=b"\x81\x80\x00"))
    assert "non-minimal" in err(raw(lengths=[b"\x83\x00"], payload=b"abc"))
    # the same values, minimally encoded, are fine
    unpack(raw(width=b"\x10"))
    unpack(raw(lengths=[b"\x03"], payload=b"abc"))


def test_varint_too_large():
    # 2**32 needs 33 bits
    assert "too large" in err(raw(lengths=[b"\x80\x80\x80\x80\x10"]))
    # six bytes
    assert "too large" in err(raw(width=b"\x81\x80\x80\x80\x80\x01"))
    # 0xFFFFFFFF is the largest allowed value (and is then too long for the file)
    assert "truncated" in err(raw(lengths=[b"\xff\xff\xff\xff\x0f"]))


@pytest.mark.parametrize("n", [0, MAX_NAME + 1, 255])
def test_bad_name_length(n):
    # payload keeps the file above the 19-byte minimum when n == 0
    assert "name length" in err(raw(name=b"a" * n, name_len=n, payload=b"xyz"))


@pytest.mark.parametrize("name", [b"a b", b"a/b", b"\xff", b"caf\xc3\xa9", b"a\x00", b"x\n"])
def test_bad_name_bytes(name):
    assert "model name" in err(raw(name=name))


def test_name_max_length_ok():
    assert unpack(raw(name=b"A" * MAX_NAME)).model == "A" * MAX_NAME


def test_too_many_streams():
    data = raw(lengths=[0] * (MAX_STREAMS + 1))
    assert "too many streams" in err(data)
    unpack(raw(lengths=[0] * MAX_STREAMS))


def test_stream_lengths_must_match_exactly():
    good = raw(lengths=[2, 1], payload=b"abc")
    assert unpack(good).streams == (b"ab", b"c")
    assert "truncated" in err(raw(lengths=[2, 2], payload=b"abc"))
    assert "trailing bytes" in err(raw(lengths=[2, 0], payload=b"abc"))


def test_checksum_mismatch():
    data = bytearray(pack(EXAMPLE))
    data[-1] ^= 0x01
    assert err(bytes(data)) == "checksum mismatch: the .lat file is corrupt"
    data = bytearray(pack(EXAMPLE))
    data[26] ^= 0x40  # inside a payload
    assert err(bytes(data)) == "checksum mismatch: the .lat file is corrupt"


def test_fingerprint_change_caught_by_crc():
    data = bytearray(pack(EXAMPLE))
    data[17] ^= 0xFF
    assert "checksum" in err(bytes(data))


def test_unpack_rejects_non_bytes():
    with pytest.raises(TypeError):
        unpack("AEL")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pack errors


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"model": ""}, "model name"),
        ({"model": "a" * (MAX_NAME + 1)}, "model name"),
        ({"model": "has space"}, "model name"),
        ({"model": "café"}, "model name"),
        ({"model": "x\n"}, "model name"),
        ({"model": b"bytes"}, "model name"),
        ({"fingerprint": b"\0\0\0"}, "fingerprint"),
        ({"fingerprint": b"\0" * 5}, "fingerprint"),
        ({"fingerprint": "abcd"}, "fingerprint"),
        ({"quality": 0}, "quality"),
        ({"quality": 256}, "quality"),
        ({"quality": -1}, "quality"),
        ({"quality": 3.0}, "quality"),
        ({"quality": True}, "quality"),
        ({"width": 0}, "size"),
        ({"height": -3}, "size"),
        ({"width": MAX_SIDE + 1, "height": 1}, "per side"),
        ({"width": 100000, "height": 100000}, "exceeds"),
        ({"width": 2.5}, "int"),
        ({"mode": "CMYK"}, "mode"),
        ({"mode": "rgb"}, "mode"),
        ({"streams": (b"",) * (MAX_STREAMS + 1)}, "too many streams"),
        ({"streams": ("text",)}, "stream 0"),
        ({"streams": (b"ok", 5)}, "stream 1"),
        ({"streams": b"abc"}, "streams"),
        ({"streams": 3}, "streams"),
    ],
)
def test_pack_rejects_bad_fields(changes, needle):
    lat = dataclasses.replace(EXAMPLE, **changes)
    with pytest.raises(FormatError) as exc:
        pack(lat)
    assert needle in str(exc.value)


def test_pack_accepts_list_and_bytearray_streams():
    lat = dataclasses.replace(EXAMPLE, streams=[bytearray(b"\x07\x08\x09"), b"hello", memoryview(b"")])
    assert pack(lat) == pack(EXAMPLE)


def test_pack_rejects_non_latfile():
    with pytest.raises(TypeError):
        pack({"model": "x"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- misc


def test_is_lat():
    assert is_lat(pack(EXAMPLE))
    assert is_lat(b"AEL")
    assert is_lat(b"AEL\x09garbage")
    assert not is_lat(b"AE")
    assert not is_lat(b"")
    assert not is_lat(b"\x89PNG\r\n")


def test_latfile_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EXAMPLE.quality = 5  # type: ignore[misc]


def test_constants():
    assert MAGIC == b"AEL" and VERSION == 3
    assert MODES == ("L", "RGB", "RGBA", "LA")
    assert (MAX_SIDE, MAX_PIXELS, MAX_STREAMS, MAX_NAME) == (1 << 20, 1 << 28, 8, 64)
    assert issubclass(FormatError, ValueError)


def test_module_is_stdlib_only():
    code = (
        "import sys, aecli.format; "
        "bad = [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_docs_hex_dump_matches_pack():
    """docs/format.md carries the example file's hex; it must be what pack() produces."""
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "format.md"
    text = doc.read_text(encoding="utf-8")
    for line in (
        "00000000  41 45 4c 01 01 04 ac 02 c8 01 06 68 70 2d 6d 73",
        "00000010  65 1a 2b 3c 4d 03 03 05 00 07 08 09 68 65 6c 6c",
        "00000020  6f 4d 82 5d ee",
    ):
        assert line in text
    assert EXAMPLE_HEX in text

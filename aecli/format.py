"""The ``.lat`` container: a small binary header around opaque entropy-coded streams.

Standard library only, so that ``aecli`` can identify and inspect ``.lat`` files
without importing torch or numpy.  The byte-level specification is in
``docs/format.md``; keep the two in step.

Layout (integers little-endian, "varint" = minimal unsigned LEB128, <= 5 bytes, < 2**32)::

    "AEL" version:u8 mode:u8 quality:u8 width:varint height:varint
        (mode: low 4 bits colour mode; high 4 bits, version 2 only: coding scale - 8, in eighths)
        (version 3: the same layout, for the fitted kind of codec: a file fitted to its image,
        whose streams carry their own networks; scale bits 0)
    name_len:u8 name[name_len] fingerprint[4]
    stream_count:u8 stream_len:varint * stream_count
        (stream_count: bits 0-6 the count; bit 7 set: a metadata table follows, "Metadata" in the spec)
    [meta_count:u8 (meta_kind:u8 meta_len:varint) * meta_count]
    stream payloads, concatenated; then the metadata payloads, concatenated
    crc32:u32   (zlib.crc32 of every byte before it)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = [
    "MAGIC",
    "VERSION",
    "VERSIONS",
    "coded_size",
    "UNIT_SCALE",
    "MAX_SCALE",
    "MODES",
    "MAX_SIDE",
    "MAX_PIXELS",
    "MAX_STREAMS",
    "MAX_NAME",
    "MIN_SIZE",
    "NAME_RULE",
    "valid_name",
    "normalise_name",
    "FormatError",
    "LatFile",
    "pack",
    "unpack",
    "is_lat",
    "describe",
    "encode_varint",
    "META_KINDS",
]

MAGIC = b"AEL"
VERSION = 3  # the newest version; a writer uses the lowest that holds the file (version_of)
VERSIONS = (1, 2, 3)
KINDS = ("autoencoder", "fitted")  # version 3 means "fitted"; versions 1 and 2 "autoencoder"
UNIT_SCALE = 8  # coding scales are in eighths: 8 = the image was coded at its own size
MAX_SCALE = 16
MODES = ("L", "RGB", "RGBA", "LA")
MAX_SIDE = 1 << 20
MAX_PIXELS = 1 << 28
MAX_STREAMS = 8
MAX_NAME = 64
# optional metadata carried beside the image (docs/format.md, "Metadata"): kind code -> name
META_KINDS = {1: "icc", 2: "exif", 3: "xmp"}
_META_CODES = {v: k for k, v in META_KINDS.items()}
META_FLAG = 0x80  # in the stream-count byte: a metadata table follows the stream lengths
# the reader policy's decode limit (docs/format.md, "Reader policy"): padded pixels a file may claim
# before `aecli decompress` refuses it unless told otherwise (--max-pixels, $AECLI_MAX_PIXELS)
DEFAULT_DECODE_PIXELS = 1 << 26

FINGERPRINT_SIZE = 4
CRC_SIZE = 4
MAX_VARINT_BYTES = 5
MAX_VARINT = 0xFFFFFFFF

# magic(3) version(1) mode(1) quality(1) width(1) height(1) name_len(1) name(>=1)
# fingerprint(4) stream_count(1) crc(4)
MIN_SIZE = 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + FINGERPRINT_SIZE + 1 + CRC_SIZE  # 19

_NAME_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
)


class FormatError(ValueError):
    """A ``.lat`` file (or a LatFile to be packed) is malformed.

    The message is one short line meant to be shown to the user as-is.
    """


@dataclass(frozen=True)
class LatFile:
    """The decoded contents of a ``.lat`` file."""

    model: str
    fingerprint: bytes
    quality: int
    width: int
    height: int
    mode: str
    streams: tuple[bytes, ...] = ()
    scale: int = UNIT_SCALE  # the image was coded at scale/8 of its size (8..16)
    # (name, bytes) pairs in the order of META_KINDS, each name at most once, each value non-empty:
    # the ICC profile, EXIF and XMP of the source image (docs/format.md, "Metadata")
    metadata: tuple = ()
    kind: str = "autoencoder"  # or "fitted": networks fitted to the image travel in the streams

    @property
    def num_pixels(self) -> int:
        return self.width * self.height

    def header_size(self) -> int:
        """Size in bytes of everything except the stream payloads (CRC included)."""
        return (
            len(MAGIC)
            + 1  # version
            + 1  # mode
            + 1  # quality
            + _varint_size(self.width)
            + _varint_size(self.height)
            + 1
            + len(self.model.encode("ascii", "replace"))
            + FINGERPRINT_SIZE
            + 1
            + sum(_varint_size(len(s)) for s in self.streams)
            + (1 + sum(1 + _varint_size(len(v)) for _, v in self.metadata) if self.metadata else 0)
            + CRC_SIZE
        )

    def stream_sizes(self) -> list[int]:
        return [len(s) for s in self.streams]

    def file_size(self) -> int:
        """Size in bytes of the packed file."""
        return self.header_size() + sum(len(s) for s in self.streams) + sum(len(v) for _, v in self.metadata)

    def meta(self) -> dict:
        """The metadata as {name: bytes} ('icc', 'exif', 'xmp'; absent ones left out)."""
        return {k: bytes(v) for k, v in self.metadata}


# --------------------------------------------------------------------------- varints


def _varint_size(value: int) -> int:
    n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


def encode_varint(value: int) -> bytes:
    if value < 0 or value > MAX_VARINT:
        raise FormatError(f"value {value} does not fit in a 32-bit varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    """Sequential reader over a memoryview; running out of bytes means 'truncated'."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: memoryview, end: int) -> None:
        self.buf = buf
        self.pos = 0
        self.end = end

    def u8(self) -> int:
        if self.pos >= self.end:
            raise FormatError("truncated .lat file")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise FormatError("truncated .lat file")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def varint(self) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            b = self.u8()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise FormatError("non-minimal varint in .lat header")
                if value > MAX_VARINT:
                    raise FormatError("varint too large in .lat header")
                return value
        raise FormatError("varint too large in .lat header")


# --------------------------------------------------------------------------- validation


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_quality(q: int) -> None:
    if not 1 <= q <= 255:
        raise FormatError(f"invalid quality {q} (must be 1..255)")


def _check_dims(w: int, h: int) -> None:
    if w < 1 or h < 1:
        raise FormatError(f"invalid image size {w}x{h}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise FormatError(
            f"image size {w}x{h} exceeds the limit of {MAX_SIDE} pixels per side"
        )
    if w * h > MAX_PIXELS:
        raise FormatError(
            f"image size {w}x{h} exceeds the limit of {MAX_PIXELS} pixels"
        )


NAME_RULE = f"1..{MAX_NAME} characters of A-Z a-z 0-9 . _ -"


def valid_name(name: object) -> bool:
    """True if ``name`` can be written into a .lat file as its model name."""
    if not isinstance(name, str) or not name.isascii():
        return False
    raw = name.encode("ascii")
    return 1 <= len(raw) <= MAX_NAME and _NAME_BYTES.issuperset(raw)


def normalise_name(text: str) -> str:
    """A valid model name made from ``text`` (a training folder's name, say): accents dropped,
    every run of other characters made one '-', trimmed to MAX_NAME; 'model' if nothing is left."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    out, dash = [], False
    for ch in ascii_text:
        if ord(ch) in _NAME_BYTES:
            out.append(ch)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    name = "".join(out).strip("-")[:MAX_NAME].strip("-")
    return name or "model"


def _check_name_bytes(raw: bytes) -> None:
    if not 1 <= len(raw) <= MAX_NAME:
        raise FormatError(f"invalid model name length {len(raw)} (must be 1..{MAX_NAME})")
    if not _NAME_BYTES.issuperset(raw):
        raise FormatError("invalid model name (allowed: A-Z a-z 0-9 . _ -)")


def _validate(lat: LatFile) -> tuple[bytes, list[bytes], list[tuple[int, bytes]]]:
    """Check every field of ``lat``; return (name bytes, streams as bytes, metadata as (code, bytes))."""
    if not isinstance(lat, LatFile):
        raise TypeError(f"expected LatFile, got {type(lat).__name__}")
    if not isinstance(lat.model, str):
        raise FormatError("model name must be a str")
    name = lat.model.encode("ascii", "replace")  # non-ASCII -> '?', rejected below
    _check_name_bytes(name)
    fp = lat.fingerprint
    if not isinstance(fp, (bytes, bytearray, memoryview)) or len(bytes(fp)) != FINGERPRINT_SIZE:
        raise FormatError(f"fingerprint must be exactly {FINGERPRINT_SIZE} bytes")
    if not _is_int(lat.quality):
        raise FormatError("quality must be an int")
    _check_quality(lat.quality)
    if not (_is_int(lat.width) and _is_int(lat.height)):
        raise FormatError("width and height must be ints")
    _check_dims(lat.width, lat.height)
    if lat.mode not in MODES:
        raise FormatError(f"invalid mode {lat.mode!r} (must be one of {', '.join(MODES)})")
    if not _is_int(lat.scale) or not UNIT_SCALE <= lat.scale <= MAX_SCALE:
        raise FormatError(f"invalid coding scale {lat.scale!r} (must be {UNIT_SCALE}..{MAX_SCALE} eighths)")
    if lat.kind not in KINDS:
        raise FormatError(f"invalid codec kind {lat.kind!r} (must be one of {', '.join(KINDS)})")
    if lat.kind == "fitted" and lat.scale != UNIT_SCALE:
        raise FormatError("a fitted file is coded at its own size (scale 8)")
    streams = lat.streams
    if isinstance(streams, (bytes, bytearray, memoryview, str)):
        raise FormatError("streams must be a sequence of bytes objects")
    try:
        streams = list(streams)
    except TypeError:
        raise FormatError("streams must be a sequence of bytes objects") from None
    if len(streams) > MAX_STREAMS:
        raise FormatError(f"too many streams ({len(streams)} > {MAX_STREAMS})")
    out = []
    for i, s in enumerate(streams):
        if not isinstance(s, (bytes, bytearray, memoryview)):
            raise FormatError(f"stream {i} is not bytes")
        s = bytes(s)
        if len(s) > MAX_VARINT:
            raise FormatError(f"stream {i} is too large ({len(s)} bytes)")
        out.append(s)
    return name, out, _validate_meta(lat.metadata)


def _validate_meta(metadata) -> list[tuple[int, bytes]]:
    """(kind code, bytes) of `metadata`: (name, bytes) pairs in META_KINDS order, non-empty, each once."""
    if isinstance(metadata, (bytes, bytearray, memoryview, str, dict)):
        raise FormatError("metadata must be a sequence of (name, bytes) pairs")
    try:
        items = list(metadata)
    except TypeError:
        raise FormatError("metadata must be a sequence of (name, bytes) pairs") from None
    out: list[tuple[int, bytes]] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and item[0] in _META_CODES
                and isinstance(item[1], (bytes, bytearray, memoryview))):
            raise FormatError(f"metadata entries must be (name, bytes) with a name of {', '.join(_META_CODES)}")
        code, value = _META_CODES[item[0]], bytes(item[1])
        if out and code <= out[-1][0]:
            raise FormatError("metadata entries must come once each, in the order icc, exif, xmp")
        if not 1 <= len(value) <= MAX_VARINT:
            raise FormatError(f"metadata entry {item[0]} must hold 1..{MAX_VARINT} bytes")
        out.append((code, value))
    return out


# --------------------------------------------------------------------------- API


def is_lat(prefix: bytes) -> bool:
    """True if ``prefix`` starts with the ``.lat`` magic (any version)."""
    return bytes(prefix[: len(MAGIC)]) == MAGIC


def coded_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) an image of this size was coded at: ceil(width*scale/8) x ceil(height*scale/8)."""
    return -(-width * scale // UNIT_SCALE), -(-height * scale // UNIT_SCALE)


def version_of(lat: LatFile) -> int:
    """The version a file is written in: 3 for the fitted kind; else 1 unless it needs version 2's
    coding scale."""
    if lat.kind == "fitted":
        return 3
    return 1 if lat.scale == UNIT_SCALE else 2


def pack(lat: LatFile) -> bytes:
    """Serialize ``lat``; raises FormatError if a field is out of range."""
    name, streams, meta = _validate(lat)
    out = bytearray()
    out += MAGIC
    out.append(version_of(lat))
    out.append(MODES.index(lat.mode) | (lat.scale - UNIT_SCALE) << 4)
    out.append(lat.quality)
    out += encode_varint(lat.width)
    out += encode_varint(lat.height)
    out.append(len(name))
    out += name
    out += bytes(lat.fingerprint)
    out.append(len(streams) | (META_FLAG if meta else 0))
    for s in streams:
        out += encode_varint(len(s))
    if meta:
        out.append(len(meta))
        for code, value in meta:
            out.append(code)
            out += encode_varint(len(value))
    for s in streams:
        out += s
    for _, value in meta:
        out += value
    out += (zlib.crc32(out) & 0xFFFFFFFF).to_bytes(CRC_SIZE, "little")
    return bytes(out)


def unpack(data: bytes) -> LatFile:
    """Parse and validate a whole ``.lat`` file.

    Raises FormatError (and nothing else) for any malformed input.  Checks run in
    the order given in docs/format.md, "Validation order"; nothing larger than the
    input is ever allocated.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    buf = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    n = len(buf)
    _check_start(buf)  # 1-3

    # 4. header fields, in file order.  The last CRC_SIZE bytes are never part of
    #    the header, so the reader stops before them.
    r = _Reader(buf, n - CRC_SIZE)
    r.pos = len(MAGIC) + 1
    version = buf[len(MAGIC)]
    mode, code = _read_mode(r, version)
    quality = r.u8()
    _check_quality(quality)
    width = r.varint()
    height = r.varint()
    _check_dims(width, height)
    name = _read_name(r)
    fingerprint = r.take(FINGERPRINT_SIZE)
    lengths, kinds, meta_lengths = _read_lengths(r)
    _check_payload(buf, r.pos, sum(lengths) + sum(meta_lengths))  # 5-6

    streams = tuple(r.take(k) for k in lengths)
    metadata = tuple((META_KINDS[k], r.take(size)) for k, size in zip(kinds, meta_lengths))
    return LatFile(
        model=name.decode("ascii"),
        fingerprint=fingerprint,
        quality=quality,
        width=width,
        height=height,
        mode=MODES[mode],
        streams=streams,
        scale=UNIT_SCALE + code,
        metadata=metadata,
        kind="fitted" if version == 3 else "autoencoder",
    )


def _check_start(buf: memoryview) -> None:
    """Validation steps 1-3: magic, version, minimum size."""
    n = len(buf)
    # 1. magic, compared over however many bytes are present (a strict prefix of
    #    the magic is a truncated file, anything else is not a .lat file).
    head = bytes(buf[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise FormatError("not a .lat file (bad magic)")
    # 2. version, if present.
    if n > len(MAGIC) and buf[len(MAGIC)] not in VERSIONS:
        raise FormatError(f"unsupported .lat version {buf[len(MAGIC)]}")
    # 3. minimum size.
    if n < MIN_SIZE:
        raise FormatError("truncated .lat file")


def _read_mode(r: _Reader, version: int) -> tuple[int, int]:
    """The mode byte: (colour mode index, coding scale code)."""
    mode_byte = r.u8()
    code = mode_byte >> 4
    if version in (1, 3) and code:
        raise FormatError(f"reserved bits set in mode byte 0x{mode_byte:02x}")
    if version == 2 and not 1 <= code <= MAX_SCALE - UNIT_SCALE:
        raise FormatError(f"invalid coding scale code {code} (a version 2 file has 1..{MAX_SCALE - UNIT_SCALE})")
    mode_byte &= 0x0F
    if mode_byte >= len(MODES):
        raise FormatError(f"unknown color mode code {mode_byte}")
    return mode_byte, code


def _read_name(r: _Reader) -> bytes:
    name_len = r.u8()
    if not 1 <= name_len <= MAX_NAME:
        raise FormatError(f"invalid model name length {name_len} (must be 1..{MAX_NAME})")
    name = r.take(name_len)
    _check_name_bytes(name)
    return name


def _read_lengths(r: _Reader) -> tuple[list[int], list[int], list[int]]:
    """The stream count and lengths, then the metadata table if flagged: (stream lengths,
    metadata kinds, metadata lengths)."""
    count = r.u8()
    has_meta, count = bool(count & META_FLAG), count & ~META_FLAG
    if count > MAX_STREAMS:
        raise FormatError(f"too many streams ({count} > {MAX_STREAMS})")
    lengths = [r.varint() for _ in range(count)]
    kinds: list[int] = []
    meta_lengths: list[int] = []
    if has_meta:
        meta_count = r.u8()
        if not 1 <= meta_count <= len(META_KINDS):
            raise FormatError(f"invalid metadata entry count {meta_count} (must be 1..{len(META_KINDS)})")
        for _ in range(meta_count):
            kind = r.u8()
            if kind not in META_KINDS or (kinds and kind <= kinds[-1]):
                raise FormatError(f"invalid metadata kind {kind} (1..{len(META_KINDS)}, each once, increasing)")
            size = r.varint()
            if size == 0:
                raise FormatError("empty metadata entry")
            kinds.append(kind)
            meta_lengths.append(size)
    return lengths, kinds, meta_lengths


def _check_payload(buf: memoryview, pos: int, total: int) -> None:
    """Validation steps 5-6: the payloads (`total` bytes from `pos`) fill the file up to the CRC
    exactly, and the CRC matches."""
    n = len(buf)
    # 5. payload size must match the bytes left before the CRC exactly.
    remaining = n - CRC_SIZE - pos
    if total > remaining:
        raise FormatError("truncated .lat file")
    if total < remaining:
        raise FormatError("trailing bytes after the end of the .lat file")

    # 6. checksum over everything before the last four bytes.
    stored = int.from_bytes(buf[n - CRC_SIZE :], "little")
    if zlib.crc32(buf[: n - CRC_SIZE]) & 0xFFFFFFFF != stored:
        raise FormatError("checksum mismatch: the .lat file is corrupt")


def describe(lat: LatFile) -> dict:
    """A JSON-ready summary of ``lat``.  ``bpp`` counts every byte of the file."""
    header = lat.header_size()
    sizes = lat.stream_sizes()
    file_bytes = header + sum(sizes) + sum(len(v) for _, v in lat.metadata)
    extra = {"metadata": {k: len(v) for k, v in lat.metadata}} if lat.metadata else {}
    return {
        "model": lat.model,
        "fingerprint": bytes(lat.fingerprint).hex(),
        "quality": lat.quality,
        "width": lat.width,
        "height": lat.height,
        "mode": lat.mode,
        "version": version_of(lat),
        "kind": lat.kind,
        "coded_scale": lat.scale / UNIT_SCALE,
        **dict(zip(("coded_width", "coded_height"), coded_size(lat.width, lat.height, lat.scale))),
        "file_bytes": file_bytes,
        "header_bytes": header,
        "stream_bytes": sizes,
        "bpp": 8 * file_bytes / (lat.width * lat.height),
        **extra,
    }

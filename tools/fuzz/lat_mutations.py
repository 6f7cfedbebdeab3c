"""Mutations of `.lat` files: blind byte-level ones on the whole file, and field-aware ones on the
file split into its fields (`Fields`), after which the CRC-32 is mostly recomputed so that corrupt
payloads get past the checksum."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from aecli import format as latformat  # (stdlib only, cheap)

from .harness import flip_bits, rand_bytes, weighted
from .seeds import CB_MODEL, FP_MODEL, HP_MODEL, Seed


def varint(v: int) -> bytes:
    """Minimal unsigned LEB128 of any v >= 0 (also beyond the format's 32-bit range)."""
    if v < 0:
        raise ValueError(f"varint of a negative number ({v})")  # v >> 7 would stay -1: an endless loop
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def odd_varint(rng: random.Random, v: int) -> bytes:
    """A non-minimal, over-long or unterminated encoding of v."""
    b = bytearray(varint(v))
    k = rng.randrange(4)
    if k == 0:  # padded with 0x80 ... 0x00
        b[-1] |= 0x80
        b += b"\x80" * rng.randrange(0, 4) + b"\x00"
    elif k == 1:  # six or more bytes
        b = bytearray(b"\xff" * rng.randrange(5, 8) + b"\x01")
    elif k == 2:  # unterminated
        b[-1] |= 0x80
    else:  # just above 2**32 - 1
        b = bytearray(varint((1 << 32) + rng.randrange(0, 1 << 20)))
    return bytes(b)


@dataclass
class Fields:
    """A file split into its fields, raw enough that any of them can be made invalid."""

    version: int
    mode: int
    quality: int
    width: bytes
    height: bytes
    name_len: int
    name: bytes
    fingerprint: bytes
    count: int
    lengths: list[bytes]
    streams: list[bytes]
    crc: bytes = b""
    meta_table: bytes | None = None  # the metadata table (count, kinds, lengths); None: no flag
    meta: list[bytes] = field(default_factory=list)  # the metadata payloads, after the streams

    @classmethod
    def of(cls, lat: latformat.LatFile, data: bytes) -> "Fields":
        name = lat.model.encode("ascii")
        codes = {v: k for k, v in latformat.META_KINDS.items()}
        table = (bytes([len(lat.metadata)]) + b"".join(bytes([codes[k]]) + varint(len(v)) for k, v in lat.metadata)
                 if lat.metadata else None)
        return cls(latformat.version_of(lat), latformat.MODES.index(lat.mode) | (lat.scale - 8) << 4, lat.quality,
                   varint(lat.width),
                   varint(lat.height), len(name), name, bytes(lat.fingerprint), len(lat.streams),
                   [varint(len(s)) for s in lat.streams], list(lat.streams), data[-4:], table,
                   [bytes(v) for _, v in lat.metadata])

    def sync(self) -> "Fields":
        """Make the stream count and lengths match the streams again."""
        self.count = len(self.streams)
        self.lengths = [varint(len(s)) for s in self.streams]
        return self

    def body(self) -> bytes:
        return b"".join([
            latformat.MAGIC, bytes([self.version & 0xFF, self.mode & 0xFF, self.quality & 0xFF]),
            self.width, self.height, bytes([self.name_len & 0xFF]), self.name, self.fingerprint,
            bytes([(self.count | (latformat.META_FLAG if self.meta_table is not None else 0)) & 0xFF]),
            *self.lengths, self.meta_table or b"", *self.streams, *self.meta,
        ])


def crc_of(body: bytes) -> bytes:
    return (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x0F, 0x10, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xFE, 0xFF]
INTERESTING_SIDES = [0, 1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 255, 256, 1023, 1024, 4096, 16383, 16384,
                     16385, 65535, latformat.MAX_SIDE - 1, latformat.MAX_SIDE, latformat.MAX_SIDE + 1,
                     1 << 28, 0xFFFFFFFF]
NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def _set_bytes(rng: random.Random, b: bytes, count: int) -> bytes:
    if not b:
        return b
    out = bytearray(b)
    for _ in range(count):
        out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(out)


# --------------------------------------------------------------------------- blind mutations of the whole file


def m_bitflip(rng, data):
    return flip_bits(rng, data, rng.choice([1, 1, 1, 2, 3, 8]))


def m_byteset(rng, data):
    return _set_bytes(rng, data, rng.choice([1, 1, 2, 4]))


def m_truncate(rng, data):
    return data[: rng.randrange(len(data))]


def m_extend(rng, data):
    return data + rand_bytes(rng, rng.choice([1, 2, 4, 8, 64]))


def m_insert(rng, data):
    i = rng.randrange(len(data) + 1)
    return data[:i] + rand_bytes(rng, rng.randrange(1, 17)) + data[i:]


def m_delete(rng, data):
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randrange(1, 17):]


def m_duplicate(rng, data):
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randrange(1, 33))
    k = rng.randrange(len(data) + 1)
    return data[:k] + data[i:j] + data[k:]


def m_random(rng, data):
    prefix = [b"", b"A", b"AE", b"AEL", b"AEL\x01", b"AEL\x01\x01"][rng.randrange(6)]
    return prefix + rand_bytes(rng, rng.randrange(0, 80))


BLIND = {
    "bitflip": (m_bitflip, 6), "byteset": (m_byteset, 5), "truncate": (m_truncate, 3), "extend": (m_extend, 2),
    "insert": (m_insert, 2), "delete": (m_delete, 2), "duplicate": (m_duplicate, 1), "random": (m_random, 1),
}


# --------------------------------------------------------------------------- field-aware mutations (on Fields; the caller re-assembles and sets the CRC)


def f_dims(rng, f, seeds):
    for attr in rng.choice([("width",), ("height",), ("width", "height")]):
        k = rng.random()
        if k < 0.5:
            v = rng.choice(INTERESTING_SIDES)
        elif k < 0.8:
            v = rng.randrange(1, 2049)
        else:
            v = rng.randrange(1, latformat.MAX_SIDE + 1)
        setattr(f, attr, varint(v))
    if rng.random() < 0.1:  # exactly the pixel limit, or just over it
        w = rng.choice([1 << 14, latformat.MAX_SIDE, 1 << 18])
        f.width, f.height = varint(w), varint(latformat.MAX_PIXELS // w + rng.randrange(2))


def f_dims_near(rng, f, seeds, lat):
    """Plausible sizes next to the real one: the streams no longer fit the latent grid."""
    for attr, v in rng.choice([(("width", lat.width),), (("height", lat.height),),
                               (("width", lat.width), ("height", lat.height))]):
        d = rng.choice([1, 2, 15, 16, 17, 48, 63, 64, 65, 128, rng.randrange(1, 300)]) * rng.choice([-1, 1])
        setattr(f, attr, varint(max(0, v + d)))


def f_dims_encoding(rng, f, seeds):
    attr = rng.choice(["width", "height"])
    setattr(f, attr, odd_varint(rng, rng.choice([0, 1, 16, 127, 128, 300])))


def f_mode(rng, f, seeds):
    f.mode = rng.randrange(4) if rng.random() < 0.7 else rng.choice([4, 5, 15, 0x10, 0x11, 0x31, 0x81, 0x83, 0x91, 0xF0, 0xFF])


def f_quality(rng, f, seeds):
    f.quality = rng.choice([0, 1, 2, 3, 4, 5, 8, 9, 128, 255, rng.randrange(256)])


def f_version(rng, f, seeds):
    f.version = rng.choice([0, 1, 2, 3, 0x81, 0xFF])


def f_name(rng, f, seeds):
    k = rng.randrange(6)
    if k == 0:  # length byte only
        f.name_len = rng.choice([0, 1, len(f.name) - 1, len(f.name) + 1, latformat.MAX_NAME, latformat.MAX_NAME + 1,
                                 255, rng.randrange(256)])
    elif k == 1:  # another valid name
        f.name = bytes(rng.choice(NAME_CHARS) for _ in range(rng.randrange(1, latformat.MAX_NAME + 1)))
        f.name_len = len(f.name)
    elif k == 2:  # a known model (other fingerprint) or the other test model
        f.name = rng.choice([b"hp", b"hpc", b"dn", HP_MODEL.encode(), FP_MODEL.encode(), CB_MODEL.encode()])
        f.name_len = len(f.name)
    elif k == 3:  # invalid bytes
        f.name = _set_bytes(rng, f.name, 1) if rng.random() < 0.5 else bytes([rng.choice([0, 0x20, 0x2F, 0x7F, 0xC3, 0xFF])]) + f.name
        f.name_len = len(f.name)
    elif k == 4:  # empty or too long
        f.name = b"" if rng.random() < 0.5 else b"a" * (latformat.MAX_NAME + rng.randrange(1, 10))
        f.name_len = len(f.name)
    else:  # path-like names must not be looked up as paths
        f.name = rng.choice([b"..", b".", b"-", b"hp.json", b"..hp", b"vector-hp.safetensors"])
        f.name_len = len(f.name)


def f_fingerprint(rng, f, seeds):
    if rng.random() < 0.5:
        f.fingerprint = flip_bits(rng, f.fingerprint, 1)
    else:  # name and fingerprint of another seed's model (mostly: the file claims the other model)
        other = rng.choice(seeds).lat
        f.name, f.name_len, f.fingerprint = other.model.encode(), len(other.model), other.fingerprint


def f_count(rng, f, seeds):
    k = rng.randrange(3)
    c = rng.choice([0, 1, 2, 3, 4, 5, 8, 9, 255])
    if k == 0:  # count only
        f.count = c
    elif k == 1:  # count and lengths: extra empty or random streams
        while len(f.streams) < min(c, 8):
            f.streams.append(rand_bytes(rng, rng.choice([0, 0, 4, 9])))
        f.streams = f.streams[: min(c, 8)]
        f.sync()
        if c > 8:
            f.count = c
    else:  # lengths only
        f.lengths = f.lengths[: rng.randrange(len(f.lengths) + 1)] + [varint(rng.randrange(4))] * rng.randrange(3)


def f_length(rng, f, seeds):
    if not f.lengths:
        f.lengths.append(varint(rng.randrange(8)))
        return
    i = rng.randrange(len(f.lengths))
    n = len(f.streams[i]) if i < len(f.streams) else 0
    k = rng.random()
    if k < 0.6:
        f.lengths[i] = varint(max(0, n + rng.choice([-4, -1, 1, 4, rng.randrange(-n, 64)])))
    elif k < 0.8:
        f.lengths[i] = varint(rng.choice([0, 0xFFFFFFFF, 0xFFFFFFFE, 1 << 31, 1 << 28]))
    else:
        f.lengths[i] = odd_varint(rng, n)


def _pick_stream(rng, f):
    return rng.randrange(len(f.streams)) if f.streams else None


def f_stream_bits(rng, f, seeds):
    i = _pick_stream(rng, f)
    if i is not None:
        s = f.streams[i]
        f.streams[i] = flip_bits(rng, s, rng.choice([1, 1, 2, 8])) if rng.random() < 0.6 else _set_bytes(rng, s, rng.choice([1, 4]))
    f.sync()


def f_stream_resize(rng, f, seeds):
    i = _pick_stream(rng, f)
    if i is not None:
        s = f.streams[i]
        k = rng.randrange(5)
        if k == 0:
            s = s[: rng.randrange(len(s) + 1)]
        elif k == 1:
            s = s[: len(s) - 4 * rng.randrange(1, 4)] if len(s) >= 4 else b""
        elif k == 2:
            s = s + rand_bytes(rng, 4 * rng.randrange(1, 8))
        elif k == 3:
            s = s + bytes([rng.choice([0, 0xFF])]) * rng.choice([1, 4, 64, 4096])
        else:
            s = s + rand_bytes(rng, rng.randrange(1, 8))
        f.streams[i] = s
    f.sync()


def f_stream_replace(rng, f, seeds):
    i = _pick_stream(rng, f)
    if i is not None:
        n = rng.choice([0, 4, 8, 16, 64, len(f.streams[i]), 4 * rng.randrange(0, 256)])
        fill = rng.randrange(3)
        f.streams[i] = rand_bytes(rng, n) if fill == 0 else bytes([0 if fill == 1 else 0xFF]) * n
    f.sync()


def f_stream_shuffle(rng, f, seeds):
    k = rng.randrange(5)
    s = f.streams
    if k == 0 and s:
        del s[rng.randrange(len(s))]
    elif k == 1 and s and len(s) < 8:
        i = rng.randrange(len(s))
        s.insert(i, s[i])
    elif k == 2 and len(s) >= 2:
        i, j = rng.sample(range(len(s)), 2)
        s[i], s[j] = s[j], s[i]
    elif k == 3 and len(s) < 8:
        s.append(rand_bytes(rng, rng.choice([0, 4, 16])) if rng.random() < 0.5 else zlib.compress(b"\x80" * 64))
    else:
        s.clear()
    f.sync()


def _zigzag(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def f_escapes(rng, f, seeds, lat):
    """Crafted escape streams (the stream after the range-coded ones)."""
    if not f.streams:
        return
    has_alpha = lat.mode in ("RGBA", "LA")
    i = max(0, len(f.streams) - (2 if has_alpha else 1))
    k = rng.randrange(5)
    if k == 0:  # huge values
        vals = [rng.choice([1 << 30, -(1 << 30), (1 << 41) - 1, -(1 << 41), 1 << 34]) for _ in range(rng.randrange(1, 40))]
        esc = b"".join(varint(_zigzag(v)) for v in vals)
    elif k == 1:  # long unterminated continuation
        esc = b"\x80" * rng.randrange(1, 20) + (b"\x01" if rng.random() < 0.5 else b"")
    elif k == 2:  # many zeros (escape value 0, repeatedly)
        esc = bytes(rng.choice([1, 16, 1000, 20000]))
    elif k == 3:  # random varints
        esc = b"".join(varint(_zigzag(rng.randrange(-5000, 5000))) for _ in range(rng.randrange(1, 200)))
    else:
        esc = f.streams[i] + rand_bytes(rng, rng.randrange(1, 8))
    f.streams[i] = esc
    f.sync()


def f_alpha(rng, f, seeds, lat):
    """Crafted alpha streams (zlib), with the mode switched to one with alpha if needed."""
    w, h = lat.width, lat.height
    if lat.mode not in ("RGBA", "LA"):
        f.mode = rng.choice([2, 3])
        f.streams.append(b"")
    if not f.streams:
        return
    k = rng.randrange(7)
    if k == 0:
        a = zlib.compress(bytes(max(0, w * h + rng.choice([-1, 1]))))
    elif k == 1:  # a bomb: far more than the header implies
        a = zlib.compress(bytes(rng.choice([1 << 16, 1 << 20, 16 << 20])), 9)
    elif k == 2:  # right size, trailing data
        a = zlib.compress(bytes(w * h)) + rand_bytes(rng, rng.randrange(1, 8))
    elif k == 3:  # right size, cut short
        z = zlib.compress(bytes(w * h))
        a = z[: rng.randrange(len(z))]
    elif k == 4:  # raw deflate / gzip framing
        c = zlib.compressobj(wbits=rng.choice([-15, 31]))
        a = c.compress(bytes(w * h)) + c.flush()
    elif k == 5:
        a = rand_bytes(rng, rng.randrange(0, 64))
    else:
        a = flip_bits(rng, f.streams[-1], 1)
    f.streams[-1] = a
    f.sync()


def f_splice(rng, f, seeds, lat):
    """Header of this seed, streams of another: valid container, wrong content."""
    other = rng.choice(seeds).lat
    f.streams = list(other.streams)
    f.sync()


def f_bomb(rng, f, seeds, lat):
    """A large claimed size with empty or all-zero streams: a range decoder reads missing data as
    zeros, so this can decode in full (as a valid file of a flat image can be this small)."""
    px = 1 << rng.randrange(12, 23)  # 4 Ki .. 4 Mi pixels, log-uniform
    w = 1 << rng.randrange(0, 23)
    w = min(max(1, w), latformat.MAX_SIDE)
    f.width, f.height = varint(w), varint(max(1, min(latformat.MAX_SIDE, px // w)))
    f.streams = [b"" if rng.random() < 0.5 else bytes(4 * rng.randrange(1, 3)) for _ in f.streams]
    if rng.random() < 0.3 and f.streams and lat.mode in ("RGBA", "LA"):
        f.streams[-1] = zlib.compress(bytes(min(latformat.MAX_PIXELS, w * max(1, px // w))))
    f.sync()


def f_metadata(rng, f, seeds):
    """The metadata table and payloads (docs/format.md, "Metadata"): entries added, dropped,
    reordered, of unknown kinds, empty or of lengths that do not match, random payloads."""
    k = rng.random()
    if k < 0.3:  # a consistent random table: the reader accepts it, the decoder writes it out
        kinds = sorted(rng.sample([1, 2, 3], rng.randrange(1, 4)))
        f.meta = [rand_bytes(rng, rng.choice([1, 2, 16, 130, 200, 1000, 70000])) for _ in kinds]
    elif k < 0.5:
        kinds = [rng.choice([0, 1, 2, 3, 4, 0x80, 0xFF]) for _ in range(rng.randrange(0, 5))]
        f.meta = [rand_bytes(rng, rng.randrange(0, 40)) for _ in kinds]
    elif k < 0.6:  # no table, the flag set anyway, or a table without the flag
        f.meta_table, f.meta = (b"", []) if rng.random() < 0.5 else (None, [rand_bytes(rng, 8)])
        return
    else:
        kinds = [1, 2] if rng.random() < 0.5 else [3, 1]
        f.meta = [rand_bytes(rng, rng.randrange(1, 64)) for _ in kinds]
    lengths = [varint(max(0, len(m) + (rng.choice([-1, 1, 1000]) if rng.random() < 0.2 else 0))) for m in f.meta]
    count = len(kinds) if rng.random() < 0.8 else rng.choice([0, 4, 255])
    f.meta_table = bytes([count & 0xFF]) + b"".join(bytes([kd & 0xFF]) + ln for kd, ln in zip(kinds, lengths))


FIELD = {
    "dims": (f_dims, 4), "dims_near": (f_dims_near, 4), "dims_encoding": (f_dims_encoding, 1),
    "mode": (f_mode, 3), "quality": (f_quality, 2), "version": (f_version, 1), "name": (f_name, 2),
    "fingerprint": (f_fingerprint, 2), "count": (f_count, 2), "length": (f_length, 3),
    "stream_bits": (f_stream_bits, 10), "stream_resize": (f_stream_resize, 5), "stream_replace": (f_stream_replace, 4),
    "stream_shuffle": (f_stream_shuffle, 3), "escapes": (f_escapes, 4), "alpha": (f_alpha, 3), "splice": (f_splice, 4),
    "bomb": (f_bomb, 0.25), "metadata": (f_metadata, 3),
}
_NEEDS_LAT = {"dims_near", "escapes", "alpha", "splice", "bomb"}


# --------------------------------------------------------------------------- one mutated file


def mutate(rng: random.Random, seeds: list[Seed]) -> tuple[bytes, str, bool, int]:
    """One mutated file: (data, mutation tag, CRC recomputed?, seed index)."""
    si = rng.randrange(len(seeds))
    seed = seeds[si]
    fix_crc = rng.random() < 0.75
    if rng.random() < 0.35:
        tag = weighted(rng, BLIND)
        data = BLIND[tag][0](rng, seed.data)
        if fix_crc and len(data) >= 4 and data != seed.data:
            data = data[:-4] + crc_of(data[:-4])
    else:
        tags = [weighted(rng, FIELD)]
        if rng.random() < 0.15:
            tags.append(weighted(rng, FIELD))
        f = Fields.of(seed.lat, seed.data)
        for t in tags:
            fn = FIELD[t][0]
            fn(rng, f, seeds, seed.lat) if t in _NEEDS_LAT else fn(rng, f, seeds)
        body = f.body()
        data = body + (crc_of(body) if fix_crc else f.crc)
        tag = "+".join(tags)
    if rng.random() < 0.1:  # stack a blind mutation on top
        t2 = weighted(rng, BLIND)
        data = BLIND[t2][0](rng, data) if data else data
        if fix_crc and len(data) >= 4:
            data = data[:-4] + crc_of(data[:-4])
        tag += "+" + t2
    return data, tag, fix_crc, si

#!/usr/bin/env python
"""Fuzz the `.lat` reader and the decoder behind `aecli decompress` with mutated files.

    python benchmarks/fuzz_lat.py --cases 100000 --seed 1 --out docs/fuzz.json

A seed corpus of valid files (tests/vectors/small.lat plus files this script compresses
itself: 1x1 and odd sizes, RGB / L / RGBA / LA, every quality, a hyperprior and a
factorized model) is mutated case by case: blind byte-level mutations (bit flips, byte
replacements, truncations, extensions, insertions, deletions, splices, random data) and
field-aware ones (width/height varints, their encodings, mode, quality, version, name and
its length, fingerprint, stream count, stream lengths, and the payloads themselves with the
lengths kept consistent).  Most mutations recompute the CRC-32, so that corrupt payloads get
past the checksum and reach the entropy decoder and the synthesis transform.

Each case runs the real reader (`aecli.format.unpack`) and, for a file that parses (and with
probability --decode-fraction), what `aecli decompress` does next: find the model named in
the file (`codec_for`), `Codec.decompress`, encode the image as PNG.  Outcomes:

* expected rejection: the exception the CLI turns into a one-line error (UserError, or a
  FormatError from the reader, which `_decompress_one` converts to UserError);
* crash: any other exception (it would print a traceback); the input is saved under
  --crash-dir and its hex recorded in the JSON;
* hang: the case ran past --time-limit (SIGALRM; the exception derives from BaseException so
  that no `except Exception` in the library can swallow it);
* over-allocation: the peak of traced allocations (tracemalloc: Python objects and numpy
  buffers, not torch tensors) during the reader or the decoder exceeded the bound derived
  from the header (see `Bounds`); and peak RSS (ru_maxrss, which does include torch) may not
  grow past the baseline by more than `rss_factor` times that bound plus a slack.  A flagged
  case is diagnosed (`_diagnose`, `_replay_flagged`): the lines whose memory grew since the
  start, the case run again at once, and its input replayed in a fresh process; the exit status
  counts only flags that come back there.

`--replay FILE...` runs the same checks on given files (e.g. saved crashes) and prints them.
Not part of the test suite; tests/test_fuzz.py runs a few hundred cases as a smoke test.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aecli import format as latformat  # noqa: E402  (stdlib only, cheap)
from aecli.errors import UserError  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
HP_MODEL = "vector-hp"  # the test-vector hyperprior model (n=8, m=12)
FP_MODEL = "fuzz-fp"  # an untrained factorized model built here, to reach that decode branch
CB_MODEL = "fuzz-cb"  # an untrained checkerboard model built here (two-pass decode, four streams)
MAX_ALIGN = 64  # largest `align` of any codec architecture (hyperprior)
KiB, MiB = 1 << 10, 1 << 20


# --------------------------------------------------------------------------- models and seeds


def prepare_models(folder: Path) -> Path:
    """Put vector-hp (copied), fuzz-fp and fuzz-cb (untrained factorized and checkerboard models)
    in `folder`."""
    import torch

    from aecli import registry
    from aecli.codec import model as codec_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ext in (".safetensors", ".json"):
        shutil.copy(VECTORS / f"{HP_MODEL}{ext}", folder / f"{HP_MODEL}{ext}")
    for name, kind, seed in ((FP_MODEL, "factorized", 2024), (CB_MODEL, "checkerboard", 2025)):
        if (folder / f"{name}.safetensors").exists():
            continue
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        m = codec_model.build({"kind": kind, "n": 8, "m": 12, "lambdas": list(codec_model.COMPRESSAI_LAMBDAS[:3])})
        with torch.no_grad():  # large gains, so that it codes many symbols (as tests/conftest.py)
            m.gain.copy_(torch.linspace(1.0, 4.0, 3).unsqueeze(1).expand_as(m.gain))
            m.inv_gain.copy_(-m.gain)
            if kind == "checkerboard":  # a context that matters (a new one starts at zero)
                m.ep[-1].weight.normal_(0, 0.1)
                m.ep[-1].bias.normal_(0, 0.1)
        torch.random.set_rng_state(state)
        meta = {"name": name, "task": "codec", "architecture": m.config(), "qualities": [1, 2, 3],
                "default_quality": 2}
        registry.save(codec_model.export_tensors(m), meta, folder / f"{name}.safetensors")
    return folder


# (height, width, mode, quality, model, picture)
SEED_SPECS = [
    (1, 1, "RGB", 2, HP_MODEL, "photo"),
    (1, 1, "L", 1, HP_MODEL, "photo"),
    (1, 1, "RGBA", 3, HP_MODEL, "photo"),
    (1, 1, "LA", 2, HP_MODEL, "noise"),
    (2, 3, "RGB", 3, HP_MODEL, "noise"),
    (7, 1, "L", 2, HP_MODEL, "photo"),
    (1, 9, "RGB", 1, HP_MODEL, "photo"),
    (13, 17, "RGB", 3, HP_MODEL, "noise"),
    (17, 13, "RGBA", 1, HP_MODEL, "photo"),
    (31, 33, "L", 3, HP_MODEL, "photo"),
    (63, 65, "RGB", 3, HP_MODEL, "noise"),
    (64, 64, "LA", 2, HP_MODEL, "photo"),
    (65, 130, "RGB", 1, HP_MODEL, "photo"),
    (100, 37, "RGBA", 3, HP_MODEL, "noise"),
    (1, 1, "RGB", 2, FP_MODEL, "photo"),
    (20, 30, "RGB", 3, FP_MODEL, "noise"),
    (33, 17, "L", 1, FP_MODEL, "photo"),
    (16, 48, "RGBA", 2, FP_MODEL, "photo"),
    (9, 40, "LA", 3, FP_MODEL, "noise"),
    (1, 1, "RGB", 2, CB_MODEL, "photo"),
    (21, 35, "RGB", 3, CB_MODEL, "noise"),
    (40, 33, "L", 1, CB_MODEL, "photo"),
    (64, 80, "RGBA", 3, CB_MODEL, "photo"),
    (17, 70, "LA", 2, CB_MODEL, "noise"),
]


@dataclass
class Seed:
    name: str
    data: bytes
    lat: latformat.LatFile


def _picture(h: int, w: int, channels: int, kind: str, rng) -> "np.ndarray":  # noqa: F821
    import numpy as np

    if kind == "noise":  # white noise at full range: large residuals, escapes
        img = rng.integers(0, 256, (h, w, channels))
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(np.sin(xx / 5.0 + c) + np.cos(yy / 3.0 - c)) * 60 + 128 for c in range(channels)], axis=2)
        img = img + rng.normal(0, 8, (h, w, channels))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


# fitted files: (height, width, mode, quality, picture); short fits, busy latents at quality 8
FITTED_SPECS = [
    (1, 1, "RGB", 4, "photo"),
    (5, 7, "L", 8, "noise"),
    (17, 13, "RGBA", 8, "photo"),
    (24, 32, "RGB", 8, "noise"),
    (33, 20, "LA", 6, "photo"),
]
FITTED_ITERATIONS = 30


def build_corpus() -> list[Seed]:
    """The valid seed files; the models must be findable (AECLI_MODEL_PATH)."""
    import numpy as np

    from aecli.codec.api import load_codec
    from aecli.imageio import Image

    rng = np.random.default_rng(12345)
    small = (VECTORS / "small.lat").read_bytes()
    seeds = [Seed("small.lat", small, latformat.unpack(small))]
    meta = (VECTORS / "small-meta.lat").read_bytes()
    seeds.append(Seed("small-meta.lat", meta, latformat.unpack(meta)))
    for h, w, mode, q, model, kind in SEED_SPECS:
        codec = load_codec(model)
        pixels = _picture(h, w, 1 if mode in ("L", "LA") else 3, kind, rng)
        alpha = _picture(h, w, 1, "photo", rng) if mode in ("RGBA", "LA") else None
        data = codec.compress(Image(pixels, alpha, mode, 8), q)
        seeds.append(Seed(f"{model}-{w}x{h}-{mode}-q{q}-{kind}", data, latformat.unpack(data)))
    from aecli.codec.fitted import codec as fitted

    for h, w, mode, q, kind in FITTED_SPECS:  # fitted files (version 3): a few iterations each
        pixels = _picture(h, w, 1 if mode in ("L", "LA") else 3, kind, rng)
        alpha = _picture(h, w, 1, "photo", rng) if mode in ("RGBA", "LA") else None
        data = fitted.compress(Image(pixels, alpha, mode, 8), q, iterations=FITTED_ITERATIONS).data
        seeds.append(Seed(f"fit-{w}x{h}-{mode}-q{q}-{kind}", data, latformat.unpack(data)))
    for s in seeds:  # every seed must decode, or the corpus (or the codec) is broken
        cli_decode(s.lat)
    return seeds


# --------------------------------------------------------------------------- the code under test


def cli_reader(data: bytes) -> latformat.LatFile:
    """The reader as `aecli decompress` / `aecli info` call it."""
    return latformat.unpack(data)


def cli_decode(lat: latformat.LatFile) -> bytes:
    """What `aecli decompress` does after parsing (aecli/codec/files.py, `_decompress_one`)."""
    from aecli.codec.api import codec_for
    from aecli.imageio import encode_image

    if lat.kind == "fitted":  # _decompress_fitted
        from aecli.codec.fitted import codec as fitted

        return encode_image(fitted.decompress(lat), "png")
    codec = codec_for(lat, None)
    img = codec.decompress(lat)
    return encode_image(img, "png", metadata=lat.meta())


def reader_expected(exc: BaseException) -> bool:
    # _decompress_one and inspection.lat_info turn FormatError into UserError.
    return isinstance(exc, (latformat.FormatError, UserError))


def decoder_expected(exc: BaseException) -> bool:
    # aecli.cli._guarded and aecli.batch.run catch UserError only; anything else is a traceback.
    return isinstance(exc, UserError)


# --------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class Bounds:
    """Allowed peak of traced allocations (bytes) for one case.

    reader:  reader_per_byte * len(file) + reader_const.  The reader copies the payloads
             once (<= len(file)) and builds a few small objects; nothing may depend on the
             sizes the header claims.  Measured: about 1x the file + 2 KiB.
    decoder: per_pixel * Wp * Hp + per_symbol * S + per_byte * len(file) + const, where
             Wp, Hp are the claimed width/height at the file's coding scale, rounded up to
             MAX_ALIGN (the codec pads to its alignment), and S = m*(Wp/16)*(Hp/16) + n*(Wp/64)*(Hp/64) is the number of
             latent symbols the named model codes (m, n its channels).  Per symbol the
             decoder keeps a handful of int64 arrays (table index, coding order, sorted
             symbols, symbols, escapes: <= 8 x 8 bytes); per pixel the output image and its
             copies (RGB uint8, the float32 grey conversion of an L image: <= 3*4 + 4 + 4 + 1
             bytes, alpha 1 byte, PNG output < 5 bytes).  The constants are about 2-3x the
             largest values measured over the seed corpus (see docs/fuzz.md).
    rss:     peak RSS (which also sees torch tensors) may not rise above the baseline by more
             than rss_factor * (decoder bound) + rss_slack.
    """

    reader_per_byte: float = 2.0
    reader_const: int = 64 * KiB
    per_pixel: float = 48.0
    per_symbol: float = 160.0
    per_byte: float = 8.0
    const: int = 2 * MiB
    rss_factor: float = 4.0
    rss_slack: int = 256 * MiB

    def reader(self, n: int) -> int:
        return int(self.reader_per_byte * n + self.reader_const)

    def decoder(self, lat: latformat.LatFile, n: int, channels: tuple[int, int]) -> int:
        wp, hp = padded_size(lat)
        m, hyper_n = channels
        symbols = m * (wp // 16) * (hp // 16) + hyper_n * (wp // 64) * (hp // 64)
        return int(self.per_pixel * wp * hp + self.per_symbol * symbols + self.per_byte * n + self.const)


_CHANNELS: dict = {}


def _model_channels(name: str) -> tuple[int, int] | None:
    """(m, n) of the codec model a file names (n = 0 without a hyperprior), or None if not installed."""
    from aecli import registry

    key = (name, os.environ.get("AECLI_MODEL_PATH", ""), os.environ.get("AECLI_HOME", ""))
    if key not in _CHANNELS:
        _CHANNELS[key] = None
        for mf in registry.all_models():
            if mf.name == name and mf.meta.get("task") == "codec":
                arch = mf.meta.get("architecture", {})
                try:
                    m = int(arch.get("m", 0))
                    n = int(arch.get("n", 0)) if arch.get("kind") == "hyperprior" else 0
                except (TypeError, ValueError):
                    break
                _CHANNELS[key] = (m, n)
                break
    return _CHANNELS[key]


# --------------------------------------------------------------------------- mutations


def varint(v: int) -> bytes:
    """Minimal unsigned LEB128 of any v >= 0 (also beyond the format's 32-bit range)."""
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


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def _flip_bits(rng: random.Random, b: bytes, flips: int) -> bytes:
    if not b:
        return b
    out = bytearray(b)
    for _ in range(flips):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_bytes(rng: random.Random, b: bytes, count: int) -> bytes:
    if not b:
        return b
    out = bytearray(b)
    for _ in range(count):
        out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(out)


# ---- blind mutations of the whole file


def m_bitflip(rng, data):
    return _flip_bits(rng, data, rng.choice([1, 1, 1, 2, 3, 8]))


def m_byteset(rng, data):
    return _set_bytes(rng, data, rng.choice([1, 1, 2, 4]))


def m_truncate(rng, data):
    return data[: rng.randrange(len(data))]


def m_extend(rng, data):
    return data + _rand_bytes(rng, rng.choice([1, 2, 4, 8, 64]))


def m_insert(rng, data):
    i = rng.randrange(len(data) + 1)
    return data[:i] + _rand_bytes(rng, rng.randrange(1, 17)) + data[i:]


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
    return prefix + _rand_bytes(rng, rng.randrange(0, 80))


BLIND = {
    "bitflip": (m_bitflip, 6), "byteset": (m_byteset, 5), "truncate": (m_truncate, 3), "extend": (m_extend, 2),
    "insert": (m_insert, 2), "delete": (m_delete, 2), "duplicate": (m_duplicate, 1), "random": (m_random, 1),
}


# ---- field-aware mutations (on Fields; the caller re-assembles and sets the CRC)


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
        f.fingerprint = _flip_bits(rng, f.fingerprint, 1)
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
            f.streams.append(_rand_bytes(rng, rng.choice([0, 0, 4, 9])))
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
        f.streams[i] = _flip_bits(rng, s, rng.choice([1, 1, 2, 8])) if rng.random() < 0.6 else _set_bytes(rng, s, rng.choice([1, 4]))
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
            s = s + _rand_bytes(rng, 4 * rng.randrange(1, 8))
        elif k == 3:
            s = s + bytes([rng.choice([0, 0xFF])]) * rng.choice([1, 4, 64, 4096])
        else:
            s = s + _rand_bytes(rng, rng.randrange(1, 8))
        f.streams[i] = s
    f.sync()


def f_stream_replace(rng, f, seeds):
    i = _pick_stream(rng, f)
    if i is not None:
        n = rng.choice([0, 4, 8, 16, 64, len(f.streams[i]), 4 * rng.randrange(0, 256)])
        fill = rng.randrange(3)
        f.streams[i] = _rand_bytes(rng, n) if fill == 0 else bytes([0 if fill == 1 else 0xFF]) * n
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
        s.append(_rand_bytes(rng, rng.choice([0, 4, 16])) if rng.random() < 0.5 else zlib.compress(b"\x80" * 64))
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
        esc = f.streams[i] + _rand_bytes(rng, rng.randrange(1, 8))
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
        a = zlib.compress(bytes(w * h)) + _rand_bytes(rng, rng.randrange(1, 8))
    elif k == 3:  # right size, cut short
        z = zlib.compress(bytes(w * h))
        a = z[: rng.randrange(len(z))]
    elif k == 4:  # raw deflate / gzip framing
        c = zlib.compressobj(wbits=rng.choice([-15, 31]))
        a = c.compress(bytes(w * h)) + c.flush()
    elif k == 5:
        a = _rand_bytes(rng, rng.randrange(0, 64))
    else:
        a = _flip_bits(rng, f.streams[-1], 1)
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
        f.meta = [_rand_bytes(rng, rng.choice([1, 2, 16, 130, 200, 1000, 70000])) for _ in kinds]
    elif k < 0.5:
        kinds = [rng.choice([0, 1, 2, 3, 4, 0x80, 0xFF]) for _ in range(rng.randrange(0, 5))]
        f.meta = [_rand_bytes(rng, rng.randrange(0, 40)) for _ in kinds]
    elif k < 0.6:  # no table, the flag set anyway, or a table without the flag
        f.meta_table, f.meta = (b"", []) if rng.random() < 0.5 else (None, [_rand_bytes(rng, 8)])
        return
    else:
        kinds = [1, 2] if rng.random() < 0.5 else [3, 1]
        f.meta = [_rand_bytes(rng, rng.randrange(1, 64)) for _ in kinds]
    lengths = [varint(len(m) + (rng.choice([-1, 1, 1000]) if rng.random() < 0.2 else 0)) for m in f.meta]
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


def _weighted(rng: random.Random, table: dict) -> str:
    names = list(table)
    return rng.choices(names, weights=[table[n][1] for n in names])[0]


def mutate(rng: random.Random, seeds: list[Seed]) -> tuple[bytes, str, bool, int]:
    """One mutated file: (data, mutation tag, CRC recomputed?, seed index)."""
    si = rng.randrange(len(seeds))
    seed = seeds[si]
    fix_crc = rng.random() < 0.75
    if rng.random() < 0.35:
        tag = _weighted(rng, BLIND)
        data = BLIND[tag][0](rng, seed.data)
        if fix_crc and len(data) >= 4 and data != seed.data:
            data = data[:-4] + crc_of(data[:-4])
    else:
        tags = [_weighted(rng, FIELD)]
        if rng.random() < 0.15:
            tags.append(_weighted(rng, FIELD))
        f = Fields.of(seed.lat, seed.data)
        for t in tags:
            fn = FIELD[t][0]
            fn(rng, f, seeds, seed.lat) if t in _NEEDS_LAT else fn(rng, f, seeds)
        body = f.body()
        data = body + (crc_of(body) if fix_crc else f.crc)
        tag = "+".join(tags)
    if rng.random() < 0.1:  # stack a blind mutation on top
        t2 = _weighted(rng, BLIND)
        data = BLIND[t2][0](rng, data) if data else data
        if fix_crc and len(data) >= 4:
            data = data[:-4] + crc_of(data[:-4])
        tag += "+" + t2
    return data, tag, fix_crc, si


# --------------------------------------------------------------------------- running one case


class Hang(BaseException):
    """Raised by SIGALRM.  A BaseException, so `except Exception` in the library cannot hide it."""


def _on_alarm(signum, frame):
    raise Hang()


def _arm(seconds: float | None) -> None:
    """Start the per-call timer (None: stop it)."""
    signal.setitimer(signal.ITIMER_REAL, 0.0 if seconds is None else max(1e-3, seconds))


@dataclass
class Outcome:
    ok: bool  # returned normally
    expected: bool  # returned, or raised an expected exception
    hang: bool
    elapsed: float
    peak: int  # traced allocation peak during the call, above what was allocated before it
    rss_rise_kb: int  # ru_maxrss increase during the call
    value: object = None
    error_type: str = ""
    message: str = ""
    where: str = ""  # innermost frame in aecli (file:line function) of an unexpected exception


def guarded(fn: Callable[[], object], time_limit: float, expected: Callable[[BaseException], bool], use_alarm: bool) -> Outcome:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    value, exc_info = None, None
    try:
        if use_alarm:
            _arm(time_limit)
        try:
            value = fn()
        finally:
            if use_alarm:
                _arm(None)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classifying every exception is the point
        exc_info = exc
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - before
    rss_rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    if exc_info is None:
        hang = elapsed > time_limit
        return Outcome(True, True, hang, elapsed, peak, rss_rise, value)
    hang = isinstance(exc_info, Hang) or elapsed > time_limit
    where = ""
    if not isinstance(exc_info, Hang):
        frames = traceback.extract_tb(exc_info.__traceback__)
        ours = [fr for fr in frames if "aecli" in fr.filename.replace("\\", "/").split("/")] or frames
        if ours:
            fr = ours[-1]
            where = f"{Path(fr.filename).name}:{fr.lineno} {fr.name}"
    out = Outcome(False, expected(exc_info) and not isinstance(exc_info, Hang), hang, elapsed, peak, rss_rise,
                  None, type(exc_info).__name__, str(exc_info).splitlines()[0][:300] if str(exc_info) else "", where)
    del exc_info  # drop the traceback (and the arrays its frames hold)
    return out


_CLASS_SUBS = [
    (re.compile(r"'[^']*'"), "'…'"),
    (re.compile(r"\([^()]*(?:invalid for the employed|fingerprint)[^()]*\)"), "(…)"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "<hex>"),
    (re.compile(r"mode byte 0x[0-9a-f]{2}"), "mode byte <hex>"),
    (re.compile(r"\b\d+x\d+\b"), "NxN"),
    (re.compile(r"(?<![\d-])\d+(?![\d-])"), "N"),  # numbers, but not the "0-9" in a message
]


def message_class(msg: str) -> str:
    """The message with names, numbers and fingerprints blanked out, to count kinds of rejection."""
    for rx, rep in _CLASS_SUBS:
        msg = rx.sub(rep, msg)
    return msg[:120]


# --------------------------------------------------------------------------- the run


@dataclass
class Findings:
    """What a run found that must not happen (crashes, hangs, allocations over their bounds), and its
    cases counted by mutation."""

    crashes: list = field(default_factory=list)
    crash_signatures: Counter = field(default_factory=Counter)
    hangs: list = field(default_factory=list)
    over_alloc: list = field(default_factory=list)
    rss_over: list = field(default_factory=list)
    by_mutation: dict = field(default_factory=dict)

    def summary(self, keep: int = 50) -> dict:
        return {
            "crashes": len(self.crashes),
            "crash_signatures": dict(self.crash_signatures.most_common()),
            "hangs": len(self.hangs),
            "over_allocation": len(self.over_alloc),
            "rss_over_bound": len(self.rss_over),
            "crash_examples": self.crashes[:keep],
            "hang_examples": self.hangs[:keep],
            "over_allocation_examples": self.over_alloc[:keep],
            "rss_examples": self.rss_over[:keep],
            "by_mutation": dict(sorted(self.by_mutation.items())),
        }


@dataclass
class Stats(Findings):
    cases: int = 0
    crc_recomputed: int = 0
    parsed: int = 0
    rejected_reader: Counter = field(default_factory=Counter)
    decode_attempted: int = 0
    decode_skipped_large: int = 0
    decoded: int = 0
    rejected_decoder: Counter = field(default_factory=Counter)
    reader_peak_max: int = 0
    reader_ratio_max: float = 0.0
    decoder_peak_max: int = 0
    decoder_ratio_max: float = 0.0
    decoder_ratio_case: dict = field(default_factory=dict)
    reader_time_max: float = 0.0
    decoder_time_max: float = 0.0
    decoder_time_sum: float = 0.0
    slowest: list = field(default_factory=list)


def _record(stats: Stats, kind: str, entry: dict, data: bytes, crash_dir: Path | None, keep: int = 50) -> None:
    digest = hashlib.sha1(data).hexdigest()[:16]
    entry = dict(entry, sha1=digest, bytes=len(data))
    if crash_dir is not None:
        d = Path(crash_dir)
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{kind}-{digest}.lat"
        p.write_bytes(data)
        entry["file"] = str(p)
    bucket = {"crash": stats.crashes, "hang": stats.hangs, "alloc": stats.over_alloc, "rss": stats.rss_over}[kind]
    if len(bucket) < keep:
        entry["hex"] = data.hex()
    bucket.append(entry)


def padded_size(lat: latformat.LatFile) -> tuple[int, int]:
    """The padded size the decoder works at: the coded size (the file's coding scale applied,
    docs/codec.md) rounded up to MAX_ALIGN."""
    d = latformat.describe(lat)
    return -(-d["coded_width"] // MAX_ALIGN) * MAX_ALIGN, -(-d["coded_height"] // MAX_ALIGN) * MAX_ALIGN


def padded_pixels(lat: latformat.LatFile) -> int:
    wp, hp = padded_size(lat)
    return wp * hp


def run_one(data: bytes, *, decode: bool, reader, decoder, bounds: Bounds, time_limit: float, use_alarm: bool,
            rss_base_kb: int, time_per_mpx: float = 1.0, max_decode_pixels: int | None = None) -> dict:
    """Reader then (optionally) decoder on one input; a dict describing what happened.

    The reader gets `time_limit` seconds; the decoder `time_limit + time_per_mpx * P / 1e6`
    where P is the padded pixel count the header claims (decoding is linear in it, and a
    valid file of a few bytes can claim a 2**28-pixel flat image).  Files whose P exceeds
    `max_decode_pixels` are not decoded (res["skipped"]).
    """
    r = guarded(lambda: reader(data), time_limit, reader_expected, use_alarm)
    res = {"reader": r, "decoder": None, "reader_bound": bounds.reader(len(data)), "skipped": False}
    if not (r.ok and decode and isinstance(r.value, latformat.LatFile)):
        return res
    lat = r.value
    r.value = None
    res["pixels"] = pixels = padded_pixels(lat)
    if max_decode_pixels is not None and pixels > max_decode_pixels:
        res["skipped"] = True
        return res
    channels = _model_channels(lat.model) or (320, 192)
    res["decoder_bound"] = bounds.decoder(lat, len(data), channels)
    res["decoder_limit_s"] = limit = time_limit + time_per_mpx * pixels / 1e6
    res["decoder"] = guarded(lambda: decoder(lat), limit, decoder_expected, use_alarm)
    res["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res["rss_bound_kb"] = rss_base_kb + (bounds.rss_factor * res["decoder_bound"] + bounds.rss_slack) / KiB
    return res


def _over_bound(res: dict) -> bool:
    return res["reader"].peak > res["reader_bound"] or (
        res["decoder"] is not None and res["decoder"].peak > res["decoder_bound"])


def _diagnose(res: dict, again: Callable[[], dict], baseline: tracemalloc.Snapshot, top: int = 5) -> dict:
    """What a flagged case allocated: the sites whose live allocations grew since the run began
    (a cache or a growing table shows up here), then the same case run again at once. A peak
    that does not come back on the repeat was a one-time allocation, not sized by the file."""
    grown = [st for st in tracemalloc.take_snapshot().compare_to(baseline, "lineno") if st.size_diff > 0][:top]
    rep = again()
    out = {"grown_since_start": [f"{_rel(str(st.traceback[0].filename))}:{st.traceback[0].lineno} "
                                 f"+{st.size_diff} B in +{st.count_diff} blocks" for st in grown],
           "repeat_reader_peak": rep["reader"].peak}
    if rep["decoder"] is not None:
        out["repeat_decoder_peak"] = rep["decoder"].peak
    out["repeats"] = _over_bound(rep)
    return out


def fuzz(seeds: list[Seed], cases: int, seed: int = 0, *, decode_fraction: float = 1.0, time_limit: float = 5.0,
         crash_dir: Path | None = None, reader=cli_reader, decoder=cli_decode, bounds: Bounds = Bounds(),
         progress: bool | None = False, start: int = 0, time_per_mpx: float = 1.0,
         max_decode_pixels: int | None = 1 << 26) -> dict:
    """Run `cases` mutated files (case i uses random.Random(f"{seed}:{i}")); return the summary."""
    with _instrumented() as use_alarm:
        stats = Stats()
        baseline = tracemalloc.take_snapshot()  # what lives before the first case; flagged cases are compared with it
        rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_now0 = _rss_now_kb()
        t_start = time.perf_counter()
        status = lambda: (f"parsed {stats.parsed}  decoded {stats.decoded}/{stats.decode_attempted}  "  # noqa: E731
                          f"crashes {len(stats.crashes)}  hangs {len(stats.hangs)}  over-alloc {len(stats.over_alloc)}")
        for i, rng in _each_case(progress, "fuzz .lat", cases, start, f"{seed}:", 200, status):
            data, tag, fixed, si = mutate(rng, seeds)
            decode = rng.random() < decode_fraction
            again = functools.partial(run_one, data, decode=decode, reader=reader, decoder=decoder, bounds=bounds,
                                      time_limit=time_limit, use_alarm=use_alarm, rss_base_kb=rss_base,
                                      time_per_mpx=time_per_mpx, max_decode_pixels=max_decode_pixels)
            res = again()
            if _over_bound(res):
                res["diagnosis"] = _diagnose(res, again, baseline)
            _account(stats, i, tag, fixed, si, seeds, data, res, crash_dir)
    wall = time.perf_counter() - t_start
    summary = _summary(stats, seeds, cases, seed, decode_fraction, time_limit, bounds, wall, rss_base, rss_now0)
    summary["time_per_mpx_s"] = time_per_mpx
    summary["max_decode_pixels"] = max_decode_pixels
    return summary


def _each_case(progress, label: str, cases: int, start: int, key: str, every: int, status: Callable[[], str]):
    """(i, random.Random(f"{key}{i}")) for each case, under a progress bar that shows status() every
    `every` cases."""
    from aecli.progress import progress_bar

    with progress_bar(progress) as bar:
        job = bar.add_task(label, total=cases, stats="")
        for i in range(start, start + cases):
            yield i, random.Random(f"{key}{i}")
            if (i - start) % every == every - 1 or i == start + cases - 1:
                bar.update(job, completed=i - start + 1, stats=status())


@contextmanager
def _instrumented():
    """For one run: SIGALRM for the time limits (when in the main thread) and tracemalloc for the
    allocation bounds; yields whether the alarm is in use."""
    use_alarm = hasattr(signal, "setitimer") and _in_main_thread()
    old_handler = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        yield use_alarm
    finally:
        if use_alarm:
            _arm(None)
            signal.signal(signal.SIGALRM, old_handler)
        if started_tracing:
            tracemalloc.stop()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _rss_now_kb() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // KiB)
    except (OSError, ValueError, IndexError):
        return 0


def _account(stats: Stats, i: int, tag: str, fixed: bool, si: int, seeds, data: bytes, res: dict, crash_dir) -> None:
    stats.cases += 1
    stats.crc_recomputed += fixed
    m = stats.by_mutation.setdefault(tag.split("+")[0], {"cases": 0, "parsed": 0, "decoded": 0, "decoder_rejected": 0})
    m["cases"] += 1
    r = res["reader"]
    base = {"case": i, "mutation": tag, "seed_file": seeds[si].name, "crc_recomputed": fixed}
    diag = res.get("diagnosis", {})
    stats.reader_time_max = max(stats.reader_time_max, r.elapsed)
    stats.reader_peak_max = max(stats.reader_peak_max, r.peak)
    stats.reader_ratio_max = max(stats.reader_ratio_max, r.peak / res["reader_bound"])
    if r.hang:
        _record(stats, "hang", dict(base, stage="reader", seconds=round(r.elapsed, 3), error=r.error_type), data, crash_dir)
    if not r.expected and not r.hang:
        sig = f"reader: {r.error_type} at {r.where}"
        stats.crash_signatures[sig] += 1
        _record(stats, "crash", dict(base, stage="reader", error=r.error_type, message=r.message, where=r.where), data, crash_dir)
    if r.peak > res["reader_bound"]:
        _record(stats, "alloc", dict(base, stage="reader", peak=r.peak, bound=res["reader_bound"], **diag), data, crash_dir)
    if not r.ok:
        if r.expected:
            stats.rejected_reader[message_class(r.message)] += 1
        return
    stats.parsed += 1
    m["parsed"] += 1
    stats.decode_skipped_large += res["skipped"]
    d = res["decoder"]
    if d is None:
        return
    stats.decode_attempted += 1
    stats.decoder_time_max = max(stats.decoder_time_max, d.elapsed)
    stats.decoder_time_sum += d.elapsed
    stats.decoder_peak_max = max(stats.decoder_peak_max, d.peak)
    ratio = d.peak / res["decoder_bound"]
    if ratio > stats.decoder_ratio_max:
        stats.decoder_ratio_max = ratio
        stats.decoder_ratio_case = dict(base, peak=d.peak, bound=res["decoder_bound"])
    stats.slowest.append((d.elapsed, i, tag, res["pixels"]))
    if len(stats.slowest) > 40:
        stats.slowest = sorted(stats.slowest, reverse=True)[:10]
    if d.hang:
        _record(stats, "hang", dict(base, stage="decoder", seconds=round(d.elapsed, 3), limit_s=round(res["decoder_limit_s"], 2),
                                    error=d.error_type), data, crash_dir)
    elif not d.expected:
        sig = f"decoder: {d.error_type} at {d.where}"
        stats.crash_signatures[sig] += 1
        _record(stats, "crash", dict(base, stage="decoder", error=d.error_type, message=d.message, where=d.where), data, crash_dir)
    if d.peak > res["decoder_bound"]:
        _record(stats, "alloc", dict(base, stage="decoder", peak=d.peak, bound=res["decoder_bound"], **diag), data, crash_dir)
    if d.rss_rise_kb > 0 and res["rss_kb"] > res["rss_bound_kb"]:  # this call set a new, too high peak
        _record(stats, "rss", dict(base, stage="decoder", rss_kb=res["rss_kb"], bound_kb=int(res["rss_bound_kb"])), data, crash_dir)
    if d.ok:
        stats.decoded += 1
        m["decoded"] += 1
    elif d.expected:
        stats.rejected_decoder[message_class(d.message)] += 1
        m["decoder_rejected"] += 1


def _summary(s: Stats, seeds, cases, seed, decode_fraction, time_limit, bounds, wall, rss_base, rss_now0) -> dict:
    import dataclasses

    rejected = sum(s.rejected_reader.values())
    return {
        "cases": s.cases,
        "seed": seed,
        "decode_fraction": decode_fraction,
        "time_limit_s": time_limit,
        "wall_s": round(wall, 1),
        "cases_per_s": round(s.cases / wall, 1) if wall else None,
        "crc_recomputed": s.crc_recomputed,
        "parsed_ok": s.parsed,
        "rejected": rejected,
        "reader_rejected_by_message": dict(s.rejected_reader.most_common()),
        "decode_attempted": s.decode_attempted,
        "decode_skipped_over_max_pixels": s.decode_skipped_large,
        "decoded_ok": s.decoded,
        "decoder_rejected": sum(s.rejected_decoder.values()),
        "decoder_rejected_by_message": dict(s.rejected_decoder.most_common()),
        **s.summary(),
        # flagged cases whose peak came back when the case was run again at once (see _diagnose)
        "over_allocation_repeated": sum(bool(e.get("repeats", True)) for e in s.over_alloc),
        "memory": {
            "bounds": dataclasses.asdict(bounds),
            "reader_peak_max_bytes": s.reader_peak_max,
            "reader_peak_over_bound_max": round(s.reader_ratio_max, 4),
            "decoder_peak_max_bytes": s.decoder_peak_max,
            "decoder_peak_over_bound_max": round(s.decoder_ratio_max, 4),
            "decoder_peak_over_bound_case": s.decoder_ratio_case,
            "rss_peak_at_start_mb": round(rss_base / KiB, 1),
            "rss_peak_at_end_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KiB, 1),
            "rss_now_at_start_mb": round(rss_now0 / KiB, 1),
            "rss_now_at_end_mb": round(_rss_now_kb() / KiB, 1),
        },
        "timing": {
            "reader_max_s": round(s.reader_time_max, 4),
            "decoder_max_s": round(s.decoder_time_max, 4),
            "decoder_mean_s": round(s.decoder_time_sum / s.decode_attempted, 4) if s.decode_attempted else None,
            "slowest_decodes": [{"seconds": round(t, 3), "case": i, "mutation": tag, "padded_pixels": px}
                                for t, i, tag, px in sorted(s.slowest, reverse=True)[:10]],
        },
        "corpus": [{"name": sd.name, "bytes": len(sd.data), "model": sd.lat.model,
                    "fingerprint": sd.lat.fingerprint.hex(), "quality": sd.lat.quality,
                    "width": sd.lat.width, "height": sd.lat.height, "mode": sd.lat.mode,
                    "stream_bytes": [len(x) for x in sd.lat.streams]} for sd in seeds],
    }


# --------------------------------------------------------------------------- model files (--target model)
#
# A model is two files that anyone can put in $AECLI_MODEL_PATH or name with --model: its JSON and
# its .safetensors weights.  Each case mutates one seed model's JSON, its weights, or both (the
# JSON's fingerprint made to match the mutated weights most of the time, so that the mutation gets
# past that check), writes them as m.json + m.safetensors in one folder, and runs what the commands
# do with a model there: list it (`aecli models`, `aecli info` of a file that names it), load it by
# path (`--model DIR/m.safetensors`), then use it: decode a file that names it, and compress
# and decode an image (codec), or denoise an image (denoiser).  The expected failure of each stage
# is a UserError (one line); anything else is a crash.  The file the seed model wrote is made to
# name the mutated model (its name and fingerprint) so that decoding by name reaches its weights.

DN_MODEL = "fuzz-dn"  # a tiny untrained U-Net denoiser built here, for the denoiser's loader
MODEL_SEEDS = (HP_MODEL, FP_MODEL, CB_MODEL, DN_MODEL)
MODEL_STAGES = ("list", "load", "decode", "encode")


def prepare_denoiser(folder: Path) -> None:
    """fuzz-dn in `folder`: an untrained U-Net (widths 8, 16; one block), as tests/conftest.py makes."""
    import torch

    from aecli import registry
    from aecli.denoise import model as dn_model

    if (folder / f"{DN_MODEL}.safetensors").exists():
        return
    state = torch.random.get_rng_state()
    torch.manual_seed(4321)
    m = dn_model.build({"widths": [8, 16], "blocks": 1})
    torch.random.set_rng_state(state)
    meta = {"name": DN_MODEL, "task": "denoise", "architecture": m.config(), "noise": {"sigma_range": [0, 50]}}
    registry.save(dict(m.state_dict()), meta, folder / f"{DN_MODEL}.safetensors")


@dataclass
class ModelSeed:
    name: str
    meta: dict
    weights: bytes
    lat: bytes | None  # a file this model wrote (codec models)


def model_seeds(folder: Path) -> list[ModelSeed]:
    """The seed models (their files as bytes), each codec with a 17x13 file it wrote."""
    import numpy as np

    from aecli.codec.api import load_codec
    from aecli.imageio import Image

    prepare_denoiser(folder)
    rng = np.random.default_rng(7)
    seeds = []
    for name in MODEL_SEEDS:
        meta = json.loads((folder / f"{name}.json").read_text())
        lat = None
        if meta["task"] == "codec":
            img = Image(_picture(13, 17, 3, "photo", rng), None, "RGB", 8)
            lat = load_codec(name).compress(img, meta["default_quality"], scale=8)
        seeds.append(ModelSeed(name, meta, (folder / f"{name}.safetensors").read_bytes(), lat))
    return seeds


# ---- JSON mutations: fn(rng, meta (a copy, changed in place), seed) -> None, or the document's bytes

ODD_VALUES = [None, True, False, 0, -1, 1, 2, 1.5, -0.0, 2**31, 2**63, 10**30, float("nan"), float("inf"), "", "x",
              "8", [], [1], [[]], {}, {"a": 1}, "ünïcødé", "a b"]
BIG_NUMBER = "__1e400__"  # written as the JSON number 1e400, which Python reads as inf
BOUNDARY_INTS = [0, -1, 1, 2, 3, 7, 4095, 4096, 4097, 1 << 16, 10**9, 2**64, BIG_NUMBER]


def _key_paths(meta: dict) -> list[tuple]:
    """Every key of the document and of its nested objects, and every list item below them."""
    out = []
    for k, v in meta.items():
        out.append((k,))
        if isinstance(v, dict):
            out += [(k, k2) for k2 in v] + [(k, k2, i) for k2, v2 in v.items() if isinstance(v2, list) for i in range(len(v2))]
        elif isinstance(v, list):
            out += [(k, i) for i in range(len(v))]
    return out


def _set(meta: dict, path: tuple, value=None, delete: bool = False) -> None:
    node = meta
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def j_drop(rng, meta, seed):
    _set(meta, rng.choice(_key_paths(meta)), delete=True)


def j_retype(rng, meta, seed):
    _set(meta, rng.choice(_key_paths(meta)), rng.choice(ODD_VALUES + [BIG_NUMBER]))


def j_numbers(rng, meta, seed):
    """The sizes an architecture claims: channel widths, levels, blocks, image shape, code size."""
    arch = meta.setdefault("architecture", {})
    if not isinstance(arch, dict):
        return
    key = rng.choice(["n", "m", "nh", "widths", "blocks", "in_ch", "latent", "shape", "hidden", "channels"])
    value = rng.choice(BOUNDARY_INTS)
    if key in ("widths", "shape", "hidden", "channels"):
        value = [rng.choice(BOUNDARY_INTS) for _ in range(rng.choice([0, 1, 2, 3, 7, 40]))]
    arch[key] = value


def j_levels(rng, meta, seed):
    """qualities, default_quality and lambdas out of step with each other or out of range."""
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else {}
    k = rng.randrange(6)
    if k == 0:
        meta["qualities"] = rng.choice([[], [0], [256], [1, 1], [1, 2, 3, 4], list(range(1, 300)), [3, 2, 1], ["1"]])
    elif k == 1:
        meta["default_quality"] = rng.choice([0, 4, 255, "2", None, 2.0])
    elif k == 2:
        arch["lambdas"] = rng.choice([[], [0.0], [-1.0], [float("nan")], [float("inf")], [1e-300] * 300, [0.01] * 2,
                                      [0.01] * 7, ["a"], 0.01])
    elif k == 3:
        meta["qualities"] = [rng.randrange(-2, 260) for _ in range(rng.randrange(0, 6))]
    elif k == 4:
        meta.pop("qualities", None)
    else:
        arch["lambdas"] = [rng.choice([0.001, 0.1, 10.0, BIG_NUMBER]) for _ in range(rng.randrange(1, 12))]


def j_kind(rng, meta, seed):
    arch = meta.get("architecture")
    if isinstance(arch, dict):
        arch["kind"] = rng.choice(["hyperprior", "checkerboard", "factorized", "unet", "dense", "vae", "conv",
                                   "transformer", "", None, 3])
        if rng.random() < 0.3:
            arch["nh"] = rng.choice([1, 8, 12, 64, 0, -1])


def j_name(rng, meta, seed):
    meta["name"] = rng.choice(["my model", "modèle", "a" * 65, "a" * 300, "", "../x", "x/y", ".", "-", "hpc", "hp",
                               "dn", 42, None, ["x"], "vector-hp", "fuzz-cb"])


def j_fingerprint(rng, meta, seed):
    fp = meta.get("fingerprint") if isinstance(meta.get("fingerprint"), str) else "00000000"
    k = rng.randrange(5)
    if k == 0:
        meta.pop("fingerprint", None)
    else:
        meta["fingerprint"] = [fp.upper(), fp[:7], fp + "0", "zzzzzzzz"][k - 1]


def j_task(rng, meta, seed):
    if rng.random() < 0.2:
        meta.pop("task", None)
    else:
        meta["task"] = rng.choice(["codec", "denoise", "autoencoder", "?", "", 1])


def j_document(rng, meta, seed) -> bytes:
    """A whole document that is not a model's JSON object."""
    text = json.dumps(meta)
    k = rng.randrange(10)
    if k == 0:
        return json.dumps(rng.choice([[1, 2], "text", 3, None, [meta]])).encode()
    if k == 1:
        depth = rng.choice([100, 1000, 100_000])
        return ("[" * depth + "]" * depth).encode()
    if k == 2:
        return ('{"name": "x", "training": ' + "{\"a\": " * 50_000 + "1" + "}" * 50_000 + "}").encode()
    if k == 3:
        return (text[:-1] + ', "pad": "' + "x" * rng.choice([1 << 20, 3 << 20]) + '"}').encode()  # over 1 MiB
    if k == 4:
        return text.encode()[: rng.randrange(len(text))]
    if k == 5:
        return b"\xef\xbb\xbf" + text.encode()  # a byte-order mark
    if k == 6:
        return text.encode().replace(b'"', b"\xff", 1)
    if k == 7:
        return text.replace("{", '{"name": 1, ', 1).encode()  # duplicate key
    if k == 8:
        return b""
    return text.replace(": 8", ": " + "9" * 5000, 1).encode()  # an integer of 5000 digits


JSON_MUTATIONS = {
    "json_drop": (j_drop, 3), "json_retype": (j_retype, 4), "json_numbers": (j_numbers, 4), "json_levels": (j_levels, 3),
    "json_kind": (j_kind, 2), "json_name": (j_name, 2), "json_fingerprint": (j_fingerprint, 2), "json_task": (j_task, 1),
    "json_document": (j_document, 2),
}


# ---- weights mutations: fn(rng, tensors) changes the dict of tensors in place; b_*(rng, data) -> bytes


def _pick(rng, tensors: dict, prefix: str = "", floating: bool | None = None):
    keys = [k for k, v in tensors.items() if k.startswith(prefix) and (floating is None or v.is_floating_point() == floating)]
    return rng.choice(keys) if keys else None


def w_tables(rng, t):
    """Probability tables: all-zero, a zero or negative count, huge counts, lengths and offsets out of step."""
    import torch

    which = rng.choice(["y", "z"])
    pmf, lens, off = (f"tables.{which}.{x}" for x in ("pmf", "len", "offset"))
    if pmf not in t:
        which, pmf, lens, off = "y", "tables.y.pmf", "tables.y.len", "tables.y.offset"
    k = rng.randrange(7)
    if k == 0:
        t[pmf] = torch.zeros_like(t[pmf])
    elif k == 1:
        t[pmf][rng.randrange(len(t[pmf]))] = rng.choice([0, -1, -(2**31)])
    elif k == 2:
        t[pmf] = torch.full_like(t[pmf], 2**31 - 1)
    elif k == 3:
        t[lens][rng.randrange(len(t[lens]))] += rng.choice([-1, 1, -1000, 2**20])
    elif k == 4:
        t[off] = torch.full_like(t[off], rng.choice([2**31 - 1, -(2**31), 2**20]))
    elif k == 5:
        t[lens] = torch.cat([t[lens], t[lens][:1]]) if rng.random() < 0.5 else t[lens][:-1].clone()
    else:
        t[lens] = torch.full_like(t[lens], 1)


def w_nonfinite(rng, t):
    key = _pick(rng, t, floating=True)
    if key is not None and t[key].numel():
        t[key].view(-1)[rng.randrange(t[key].numel())] = rng.choice([float("nan"), float("inf"), float("-inf")])


def w_huge(rng, t):
    key = _pick(rng, t, floating=True)
    if key is not None:
        t[key] = t[key] * rng.choice([1e30, -1e30, 1e-30, 0.0])


def w_dtype(rng, t):
    import torch

    key = _pick(rng, t)
    if key is not None:
        t[key] = t[key].to(rng.choice([torch.float64, torch.float16, torch.int8, torch.uint8, torch.bool, torch.int64,
                                       torch.int32, torch.float32]))


def w_shape(rng, t):
    key = _pick(rng, t)
    if key is None:
        return
    v = t[key]
    k = rng.randrange(5)
    if k == 0 and v.dim() and v.shape[0] > 1:
        t[key] = v[: v.shape[0] // 2].clone()
    elif k == 1:
        t[key] = v.reshape(-1).clone()
    elif k == 2:
        t[key] = v.unsqueeze(0).clone()
    elif k == 3 and v.dim() >= 2:
        t[key] = v.transpose(0, 1).contiguous()
    else:
        t[key] = v.reshape(-1)[:0].clone()  # empty


def w_keys(rng, t):
    """A tensor dropped, renamed, added, or two swapped."""
    import torch

    key = _pick(rng, t)
    k = rng.randrange(4)
    if k == 0:
        t.pop(key)
    elif k == 1:
        t[key + rng.choice(["x", ".0", "_"])] = t.pop(key)
    elif k == 2:
        t[rng.choice(["extra", "tables.q.pmf", "int.h_s.9.weight", "g_a.99.weight"])] = torch.ones(rng.choice([0, 1, 7]))
    else:
        other = _pick(rng, t)
        t[key], t[other] = t[other], t[key]


def w_integers(rng, t):
    """The integer networks and thresholds: weights past the exact range, shifts and biases out of range,
    thresholds out of order."""
    import torch

    key = _pick(rng, t, prefix=rng.choice(["int.", "tables.y.thresholds"]))
    if key is None:
        return
    v = t[key]
    if key.endswith("shift"):
        t[key] = torch.full_like(v, rng.choice([2**31 - 1, -(2**31), 64, 65, -65, 1000]))
    elif key.endswith("thresholds"):
        t[key] = v.flip(0).contiguous() if rng.random() < 0.5 else v[:0].clone()
    elif v.numel():
        v.view(-1)[rng.randrange(v.numel())] = rng.choice([2**15, -(2**15) - 1, 2**30, 2**62 if v.dtype == torch.int64 else 2**31 - 1])


def b_truncate(rng, data):
    return data[: rng.randrange(len(data))]


def b_header(rng, data):
    """The safetensors header: its length field, or bytes inside its JSON."""
    out = bytearray(data)
    if rng.random() < 0.4:
        out[:8] = rng.choice([0, 1, 2**63, len(data), 2**32, int.from_bytes(data[:8], "little") + rng.choice([-1, 1])]
                             ).to_bytes(8, "little")
    else:
        n = min(int.from_bytes(data[:8], "little"), len(data) - 8)
        for _ in range(rng.choice([1, 2, 8])):
            out[8 + rng.randrange(max(1, n))] = rng.randrange(256)
    return bytes(out)


def b_claims(rng, data):
    """A header that claims huge tensors (or offsets past the end) over the same data."""
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8:8 + n])
    key = rng.choice([k for k in head if k != "__metadata__"])
    entry = head[key]
    k = rng.randrange(3)
    if k == 0:
        entry["shape"] = [rng.choice([2**20, 2**31, 2**40]), rng.choice([1, 2**20])]
    elif k == 1:
        entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][0] + rng.choice([2**40, 2**31, 7])]
    else:
        entry["dtype"] = rng.choice(["F128", "X", "BOOL", "F8_E4M3", "I16"])
    raw = json.dumps(head).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def b_bits(rng, data):
    return _flip_bits(rng, data, rng.choice([1, 8, 64]))


TENSOR_MUTATIONS = {
    "weights_tables": (w_tables, 5), "weights_nonfinite": (w_nonfinite, 3), "weights_huge": (w_huge, 2),
    "weights_dtype": (w_dtype, 3), "weights_shape": (w_shape, 4), "weights_keys": (w_keys, 3),
    "weights_integers": (w_integers, 3),
}
BYTE_MUTATIONS = {"bytes_truncate": (b_truncate, 1), "bytes_header": (b_header, 2), "bytes_claims": (b_claims, 2),
                  "bytes_bits": (b_bits, 2)}


def _dump_json(meta: dict) -> bytes:
    return json.dumps(meta).replace(f'"{BIG_NUMBER}"', "1e400").encode()


def _mutate_weights(rng, data: bytes) -> tuple[bytes, str]:
    if rng.random() < 0.25:
        tag = _weighted(rng, BYTE_MUTATIONS)
        return BYTE_MUTATIONS[tag][0](rng, data), tag
    from safetensors.torch import load, save

    tensors = {k: v.clone() for k, v in load(data).items()}
    codec = "tables.y.pmf" in tensors  # (a denoiser has neither tables nor integer networks)
    table = {k: v for k, v in TENSOR_MUTATIONS.items() if codec or k not in ("weights_tables", "weights_integers")}
    tag = _weighted(rng, table)
    table[tag][0](rng, tensors)
    return save({k: v.contiguous() for k, v in tensors.items()}), tag


def mutate_model(rng: random.Random, seeds: list[ModelSeed]) -> tuple[int, bytes, bytes, str]:
    """One mutated model: (seed index, JSON bytes, weights bytes, mutation tag)."""
    import copy

    si = rng.randrange(len(seeds))
    seed = seeds[si]
    meta, weights, tags = copy.deepcopy(seed.meta), seed.weights, []
    k = rng.random()
    if k < 0.55:  # the weights (and, most of the time, a fingerprint that matches them)
        weights, tag = _mutate_weights(rng, weights)
        tags.append(tag)
        if rng.random() < 0.85:
            meta["fingerprint"] = hashlib.sha256(weights).hexdigest()[:8]
    if k >= 0.45 or not tags:  # the JSON
        tag = _weighted(rng, JSON_MUTATIONS)
        tags.append(tag)
        doc = JSON_MUTATIONS[tag][0](rng, meta, seed)
        return si, doc if isinstance(doc, bytes) else _dump_json(meta), weights, "+".join(tags)
    return si, _dump_json(meta), weights, "+".join(tags)


# ---- running one model case


def _reset_model_caches() -> None:
    from aecli import registry
    from aecli.codec import api as codec_api
    from aecli.denoise import api as dn_api

    codec_api._CACHE.clear()
    dn_api._CACHE.clear()
    for name in ("_warned", "skipped"):  # (getattr: the harness also runs on versions without them)
        getattr(registry, name, set()).clear()


def _list_stage(folder: Path) -> str:
    """What `aecli models` and `aecli info FILE` do with the model folder in $AECLI_MODEL_PATH."""
    from aecli import inspection

    text = inspection.format_models(inspection.model_rows())
    if (folder / "seed.lat").exists():
        text += inspection.format_info(inspection.lat_info(str(folder / "seed.lat")))
    return text


def _load_stage(seed: ModelSeed, spec: str):
    if seed.meta["task"] == "codec":
        from aecli.codec.api import load_codec

        return load_codec(spec)
    from aecli.denoise.api import load_denoiser

    return load_denoiser(spec)


def _decode_stage(seed: ModelSeed, lat_bytes: bytes | None, spec: str) -> int:
    """Decode a file that names the model (found by name and fingerprint, as `aecli decompress` does
    without --model); a denoiser denoises an image without a noise level instead."""
    from aecli.codec.api import DEFAULT_MAX_PIXELS, codec_for
    from aecli.imageio import encode_image

    if lat_bytes is None:
        out, _ = _load_stage(seed, spec).denoise(_fuzz_image(), None)
        return len(encode_image(out, "png"))
    lat = latformat.unpack(lat_bytes)
    return len(encode_image(codec_for(lat, None).decompress(lat, max_pixels=DEFAULT_MAX_PIXELS), "png"))


def _encode_stage(seed: ModelSeed, spec: str) -> int:
    """Compress an image with --model and decode it back; a denoiser denoises at sigma 25 (where it
    takes a noise level) or blind."""
    from aecli.codec.api import DEFAULT_MAX_PIXELS
    from aecli.imageio import encode_image

    model = _load_stage(seed, spec)
    if seed.meta["task"] != "codec":
        out, _ = model.denoise(_fuzz_image(), 25.0 if model.model.noise_map else None)
        return len(encode_image(out, "png"))
    data = model.compress(_fuzz_image(), None, scale=8)
    return len(encode_image(model.decompress(latformat.unpack(data), max_pixels=DEFAULT_MAX_PIXELS), "png"))


def _fuzz_image():
    import numpy as np

    from aecli.imageio import Image

    return Image(_picture(16, 20, 3, "noise", np.random.default_rng(3)), None, "RGB", 8)


def _case_lat(seed: ModelSeed, json_bytes: bytes) -> bytes | None:
    """The seed model's file, naming the mutated model (its name and fingerprint, where a file can hold
    them), so that decoding by name reaches the mutated weights."""
    from dataclasses import replace

    if seed.lat is None:
        return None
    try:
        meta = json.loads(json_bytes)
        lat = latformat.unpack(seed.lat)
        fp = bytes.fromhex(meta["fingerprint"])
        return latformat.pack(replace(lat, model=meta["name"], fingerprint=fp))
    except Exception:  # noqa: BLE001 - a JSON that cannot name a file: the file keeps the seed's name
        return seed.lat


def model_bound(json_bytes: bytes, weights: bytes) -> int:
    """Traced allocations one stage may peak at: 16 times the model's files, plus 32 MiB."""
    return 16 * (len(json_bytes) + len(weights)) + 32 * MiB


def run_model_case(seed: ModelSeed, json_bytes: bytes, weights: bytes, folder: Path, time_limit: float,
                   use_alarm: bool) -> dict:
    """The three stages on one mutated model written to `folder`: {stage: Outcome or None}."""
    _reset_model_caches()
    (folder / "m.json").write_bytes(json_bytes)
    (folder / "m.safetensors").write_bytes(weights)
    spec = str(folder / "m.safetensors")
    lat = _case_lat(seed, json_bytes)
    if lat is not None:
        (folder / "seed.lat").write_bytes(lat)
    else:
        (folder / "seed.lat").unlink(missing_ok=True)
    expected = decoder_expected  # UserError: the one line the CLI prints
    out = {"list": guarded(lambda: _list_stage(folder), time_limit, expected, use_alarm)}
    out["load"] = guarded(lambda: _load_stage(seed, spec), time_limit, expected, use_alarm)
    loaded = out["load"].ok
    out["decode"] = guarded(lambda: _decode_stage(seed, lat, spec), time_limit, expected, use_alarm) if loaded else None
    out["encode"] = guarded(lambda: _encode_stage(seed, spec), time_limit, expected, use_alarm) if loaded else None
    _reset_model_caches()
    return out


@dataclass
class ModelStats(Findings):
    cases: int = 0
    outcomes: dict = field(default_factory=lambda: {s: Counter() for s in MODEL_STAGES})
    rejected: dict = field(default_factory=lambda: {s: Counter() for s in MODEL_STAGES})
    peak_ratio_max: float = 0.0
    time_max: dict = field(default_factory=lambda: {s: 0.0 for s in MODEL_STAGES})


def _save_model_case(kind: str, entry: dict, json_bytes: bytes, weights: bytes, crash_dir: Path | None) -> dict:
    digest = hashlib.sha1(json_bytes + weights).hexdigest()[:16]
    entry = dict(entry, sha1=digest, json_bytes=len(json_bytes), weights_bytes=len(weights))
    if crash_dir is not None:
        d = Path(crash_dir) / f"model-{kind}-{digest}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "m.json").write_bytes(json_bytes)
        (d / "m.safetensors").write_bytes(weights)
        entry["dir"] = str(d)
    return entry


_CASE_DIR = re.compile(r"/\S*?aecli-fuzz-model-[^/\s]+")


def _account_model(st: ModelStats, i: int, tag: str, seed: ModelSeed, res: dict, json_bytes: bytes, weights: bytes,
                   crash_dir, rss: tuple[int, int]) -> None:
    st.cases += 1
    m = st.by_mutation.setdefault(tag.split("+")[0], {"cases": 0, "loaded": 0, "decoded": 0, "encoded": 0})
    m["cases"] += 1
    bound = model_bound(json_bytes, weights)
    base = {"case": i, "mutation": tag, "seed_model": seed.name}
    for stage in MODEL_STAGES:
        o = res[stage]
        if o is None:
            continue
        kind = "hang" if o.hang else "ok" if o.ok else "rejected" if o.expected else "crash"
        st.outcomes[stage][kind] += 1
        st.time_max[stage] = max(st.time_max[stage], o.elapsed)
        st.peak_ratio_max = max(st.peak_ratio_max, o.peak / bound)
        if kind == "rejected":
            st.rejected[stage][message_class(_CASE_DIR.sub("<dir>", o.message))] += 1
        elif kind in ("crash", "hang"):
            entry = dict(base, stage=stage, error=o.error_type, message=o.message, where=o.where, seconds=round(o.elapsed, 3))
            (st.crashes if kind == "crash" else st.hangs).append(_save_model_case(kind, entry, json_bytes, weights, crash_dir))
            if kind == "crash":
                st.crash_signatures[f"{stage}: {o.error_type} at {o.where}"] += 1
        if o.peak > bound:
            st.over_alloc.append(_save_model_case("alloc", dict(base, stage=stage, peak=o.peak, bound=bound),
                                                  json_bytes, weights, crash_dir))
        if stage != "list" and kind == "ok":
            m[{"load": "loaded", "decode": "decoded", "encode": "encoded"}[stage]] += 1
    if rss[1] > rss[0]:  # this case set a new peak RSS above the allowance
        st.rss_over.append(dict(base, rss_kb=rss[1], bound_kb=rss[0]))


def fuzz_models(seeds: list[ModelSeed], cases: int, seed: int = 0, *, time_limit: float = 10.0, crash_dir: Path | None = None,
                progress: bool | None = False, start: int = 0, rss_slack: int = 512 * MiB) -> dict:
    """Run `cases` mutated models (case i uses random.Random(f"model:{seed}:{i}")); return the summary."""
    with _instrumented() as use_alarm, _model_folder() as folder:
        st = ModelStats()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        status = lambda: f"crashes {len(st.crashes)}  hangs {len(st.hangs)}  over-alloc {len(st.over_alloc)}"  # noqa: E731
        for i, rng in _each_case(progress, "fuzz models", cases, start, f"model:{seed}:", 100, status):
            si, json_bytes, weights, tag = mutate_model(rng, seeds)
            res = run_model_case(seeds[si], json_bytes, weights, folder, time_limit, use_alarm)
            allowance = rss_start + (4 * model_bound(json_bytes, weights) + rss_slack) // KiB
            rss = (allowance, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            _account_model(st, i, tag, seeds[si], res, json_bytes, weights, crash_dir, rss)
    return _model_summary(st, seeds, cases, seed, time_limit, time.perf_counter() - t0, rss_start)


@contextmanager
def _model_folder():
    """A fresh folder that is the only one in $AECLI_MODEL_PATH, with the registry's warnings muted (a
    skipped model's warning, once per case, would flood the terminal)."""
    from aecli import registry

    folder = Path(tempfile.mkdtemp(prefix="aecli-fuzz-model-"))
    saved_path, saved_warn = os.environ.get("AECLI_MODEL_PATH"), getattr(registry, "_warn", None)
    os.environ["AECLI_MODEL_PATH"] = str(folder)
    registry._warn = lambda msg: None
    try:
        yield folder
    finally:
        if saved_warn is not None:
            registry._warn = saved_warn
        if saved_path is None:
            os.environ.pop("AECLI_MODEL_PATH", None)
        else:
            os.environ["AECLI_MODEL_PATH"] = saved_path
        shutil.rmtree(folder, ignore_errors=True)


def _model_summary(st: ModelStats, seeds, cases, seed, time_limit, wall, rss_start) -> dict:
    return {
        "target": "model",
        "cases": st.cases,
        "seed": seed,
        "time_limit_s": time_limit,
        "wall_s": round(wall, 1),
        "cases_per_s": round(st.cases / wall, 1) if wall else None,
        "outcomes": {s: dict(c) for s, c in st.outcomes.items()},
        "rejected_by_message": {s: dict(c.most_common(25)) for s, c in st.rejected.items()},
        **st.summary(),
        "memory": {
            "stage_bound": "16 x (JSON + weights bytes) + 32 MiB of traced allocations; peak RSS may not rise "
                           "above the start + 4 x that + 512 MiB",
            "peak_over_bound_max": round(st.peak_ratio_max, 4),
            "rss_peak_at_start_mb": round(rss_start / KiB, 1),
            "rss_peak_at_end_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KiB, 1),
        },
        "timing_max_s": {s: round(v, 3) for s, v in st.time_max.items()},
        "seed_models": [{"name": s.name, "task": s.meta["task"], "kind": s.meta["architecture"].get("kind", "unet"),
                         "weights_bytes": len(s.weights), "fingerprint": s.meta["fingerprint"]} for s in seeds],
    }


def _print_model_summary(s: dict, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"model cases      {s['cases']}, seed {s['seed']}")
    for stage in MODEL_STAGES:
        p(f"  {stage:<6} {s['outcomes'][stage]}")
        for msg, n in list(s["rejected_by_message"][stage].items())[:6]:
            p(f"    {n:>7}  {msg}")
    _print_crashes(p, s)
    p(f"hangs            {s['hangs']}  (limit {s['time_limit_s']} s a stage)")
    mem = s["memory"]
    p(f"over-allocation  {s['over_allocation']} (max peak/bound {mem['peak_over_bound_max']}); RSS over bound "
      f"{s['rss_over_bound']}, peak RSS {mem['rss_peak_at_start_mb']} -> {mem['rss_peak_at_end_mb']} MB")
    p(f"time             {s['wall_s']} s ({s['cases_per_s']} cases/s); slowest stage {s['timing_max_s']}")


def _replay_models(dirs: list[Path], seeds: list[ModelSeed], time_limit: float) -> int:
    """Run saved model cases (folders with m.json and m.safetensors) through the stages, with each seed
    model's role (task, file) in turn; print what happened."""
    bad = 0
    signal.signal(signal.SIGALRM, _on_alarm)
    for d in dirs:
        for seed in seeds:
            with _model_folder() as folder:
                res = run_model_case(seed, (d / "m.json").read_bytes(), (d / "m.safetensors").read_bytes(), folder,
                                     time_limit, True)
            for stage, o in res.items():
                if o is None:
                    continue
                verdict = "HANG" if o.hang else "ok" if o.ok else "rejected" if o.expected else "CRASH"
                bad += verdict in ("HANG", "CRASH")
                print(f"{d} as {seed.name}: {stage}: {verdict} {o.error_type} {o.message} {o.where} ({o.elapsed:.3f} s)")
    return 1 if bad else 0


# --------------------------------------------------------------------------- command line


def _print_crashes(p, s: dict) -> None:
    p(f"crashes          {s['crashes']}")
    for sig, n in s["crash_signatures"].items():
        p(f"  {n:>8}  {sig}")


def _print_summary(s: dict, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"cases            {s['cases']}  (CRC recomputed in {s['crc_recomputed']}), seed {s['seed']}")
    p(f"reader           parsed OK {s['parsed_ok']}, rejected {s['rejected']}")
    for msg, n in list(s["reader_rejected_by_message"].items())[:12]:
        p(f"  {n:>8}  {msg}")
    p(f"decoder          attempted {s['decode_attempted']}, decoded OK {s['decoded_ok']}, rejected {s['decoder_rejected']}"
      f" (not attempted: {s['parsed_ok'] - s['decode_attempted'] - s['decode_skipped_over_max_pixels']} by --decode-fraction,"
      f" {s['decode_skipped_over_max_pixels']} over --max-decode-pixels)")
    for msg, n in list(s["decoder_rejected_by_message"].items())[:12]:
        p(f"  {n:>8}  {msg}")
    _print_crashes(p, s)
    p(f"hangs            {s['hangs']}  (limit {s['time_limit_s']} s + {s['time_per_mpx_s']} s per claimed megapixel)")
    mem = s["memory"]
    p(f"over-allocation  {s['over_allocation']}, of which {s.get('over_allocation_repeated', '?')} came back when run "
      f"again at once and {s.get('over_allocation_reproduced', '?')} when replayed in a fresh process "
      f"(max peak/bound: reader {mem['reader_peak_over_bound_max']}, "
      f"decoder {mem['decoder_peak_over_bound_max']}); RSS over bound {s['rss_over_bound']}, "
      f"peak RSS {mem['rss_peak_at_start_mb']} -> {mem['rss_peak_at_end_mb']} MB")
    t = s["timing"]
    p(f"time             {s['wall_s']} s ({s['cases_per_s']} cases/s); slowest decode {t['decoder_max_s']} s, "
      f"mean {t['decoder_mean_s']} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100000, help="mutated files to run (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed; case i uses Random(f'{seed}:{i}')")
    ap.add_argument("--out", type=Path, default=None, help="summary JSON (default docs/fuzz.json; --target model: "
                    "docs/fuzz_models.json)")
    ap.add_argument("--decode-fraction", type=float, default=1.0,
                    help="share of the files that parse which also go through the decoder (default 1)")
    ap.add_argument("--time-limit", type=float, default=5.0,
                    help="seconds for the reader, and the decoder's base allowance, before a call counts as a hang")
    ap.add_argument("--time-per-mpx", type=float, default=1.0,
                    help="extra decoder seconds per megapixel the header claims (padded; default 1)")
    ap.add_argument("--max-decode-pixels", type=int, default=1 << 26,
                    help="do not decode files claiming more padded pixels (default 2**26: bounds a case's memory)")
    ap.add_argument("--crash-dir", type=Path, default=ROOT / "runs" / "fuzz" / "crashes")
    ap.add_argument("--models", type=Path, default=ROOT / "runs" / "fuzz" / "models",
                    help="where vector-hp and the generated fuzz-fp model live (kept, so that saved inputs replay)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--start", type=int, default=0, help="index of the first case (to resume or re-run a range)")
    ap.add_argument("--replay", type=Path, nargs="*", help="run these files (--target model: folders of saved model "
                    "cases) through the checks instead of fuzzing")
    ap.add_argument("--target", choices=("lat", "model"), default="lat",
                    help="lat: mutated .lat files (default); model: mutated model files, JSON and weights")
    args = ap.parse_args(argv)
    if args.target == "model":
        return main_models(args, argv)

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="aecli-fuzz-"))
    try:
        os.environ["AECLI_MODEL_PATH"] = str(prepare_models(args.models))
        os.environ["AECLI_HOME"] = str(work / "home")  # no user models
        seeds = build_corpus()
        if args.replay is not None:
            return _replay(args.replay, args.time_limit)
        summary = fuzz(seeds, args.cases, args.seed, decode_fraction=args.decode_fraction, time_limit=args.time_limit,
                       crash_dir=args.crash_dir, progress=None, start=args.start, time_per_mpx=args.time_per_mpx,
                       max_decode_pixels=args.max_decode_pixels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {**_head(args, argv), **summary}
    summary["over_allocation_reproduced"] = _replay_flagged(summary, args.models, args.time_limit)
    _print_summary(summary)
    _write_summary(summary, args.out or ROOT / "docs" / "fuzz.json")
    return 1 if (summary["crashes"] or summary["hangs"] or summary["over_allocation_reproduced"]
                 or summary["rss_over_bound"]) else 0


def _head(args, argv) -> dict:
    """What ran where: the command, the date, the versions."""
    import numpy
    import torch

    return {
        "command": "python " + " ".join(shlex.quote(a) for a in [_rel(sys.argv[0]), *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "constriction": _version("constriction"),
        "torch_threads": torch.get_num_threads(),
        "start": args.start,
    }


def _write_summary(summary: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {_rel(str(out))}")


def main_models(args, argv) -> int:
    """--target model: fuzz the model files (JSON and weights) of the seed models."""
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="aecli-fuzz-"))
    try:
        os.environ["AECLI_MODEL_PATH"] = str(prepare_models(args.models))
        os.environ["AECLI_HOME"] = str(work / "home")  # no user models
        seeds = model_seeds(args.models)
        if args.replay is not None:
            return _replay_models(args.replay, seeds, args.time_limit)
        summary = fuzz_models(seeds, args.cases, args.seed, time_limit=args.time_limit, crash_dir=args.crash_dir,
                              progress=None, start=args.start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {**_head(args, argv), **summary}
    _print_model_summary(summary)
    _write_summary(summary, args.out or ROOT / "docs" / "fuzz_models.json")
    return 1 if (summary["crashes"] or summary["hangs"] or summary["over_allocation"] or summary["rss_over_bound"]) else 0


def _replay_flagged(summary: dict, models: Path, time_limit: float) -> int:
    """Replay each over-allocation's saved input alone, in a fresh process (`--replay`): a peak that
    came from the state the long run had built up (CPython rebuilding a process-wide table, see
    docs/fuzz.md) does not come back; one sized by the file does. Returns how many came back
    (flagged cases beyond the recorded examples, or without a saved input, count as come back)."""
    examples = summary["over_allocation_examples"]
    reproduced = summary["over_allocation"] - len(examples)
    for e in examples:
        if "file" not in e:
            reproduced += 1
            continue
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--replay", e["file"], "--models", str(models),
                            "--time-limit", str(time_limit)], capture_output=True, text=True)
        e["fresh_process_replay"] = "within bound" if r.returncode == 0 else "over bound"
        reproduced += r.returncode != 0
    return reproduced


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _rel(p: str) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return p


def _replay(files: list[Path], time_limit: float) -> int:
    signal.signal(signal.SIGALRM, _on_alarm)
    tracemalloc.start()
    bad = 0
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for p in files:
        data = p.read_bytes()
        res = run_one(data, decode=True, reader=cli_reader, decoder=cli_decode, bounds=Bounds(),
                      time_limit=time_limit, use_alarm=True, rss_base_kb=rss_base)
        for stage in ("reader", "decoder"):
            o = res[stage]
            if o is None:
                continue
            verdict = "ok" if o.ok else ("rejected" if o.expected else "CRASH")
            if o.hang:
                verdict = "HANG"
            bound = res[f"{stage}_bound"]
            if o.peak > bound:
                verdict += " OVER-ALLOCATION"
            bad += verdict not in ("ok", "rejected")
            print(f"{p}: {stage}: {verdict} {o.error_type} {o.message} {o.where} "
                  f"({o.elapsed:.3f} s, peak {o.peak} B of {bound})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Range coding of integer symbols with the stored integer tables (numpy + constriction).

Every symbol has a table index (a hyperprior scale level, or a channel).  Symbols are coded
grouped by table, in increasing table order, and in raster order inside a group; decoding
follows the same order, so only the table indexes (which both sides compute exactly) need
to agree.  The last entry of every table is an escape: a symbol outside the table's range
is coded as the escape, and its value goes to a separate stream of zig-zag varints.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..format import encode_varint

# Fixed-point precision of the stored tables (counts of each symbol out of ~2**PMF_BITS).
PMF_BITS = 24
ESCAPE_LIMIT = 1 << 30
# the encoder clamps symbols to +-SYMBOL_LIMIT in float32 before making them integers: 2**30 - 128 is
# exact in float32 (2**30 - 1 is not: it rounds up to 2**30, past the escape range), and no real
# image comes near it
SYMBOL_LIMIT = ESCAPE_LIMIT - 128


class CodingError(ValueError):
    """The entropy-coded data does not decode (corrupt stream)."""


def quantize_pmf(pmf: np.ndarray, escape: float) -> np.ndarray:
    """Float probabilities (+ escape mass) -> int32 counts, every symbol at least 1."""
    p = np.concatenate([np.asarray(pmf, dtype=np.float64), [max(escape, 0.0)]])
    counts = np.maximum(np.round(p * (1 << PMF_BITS)), 1).astype(np.int64)
    return counts.astype(np.int32)


def constriction():
    """The entropy coder's module (constriction), imported on first use."""
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - an install problem
        raise RuntimeError("the entropy coder 'constriction' is not installed: pip install constriction") from exc
    return constriction


def categorical(pmf: np.ndarray):
    """constriction's model of one integer table."""
    return constriction().stream.model.Categorical(pmf.astype(np.float64), perfect=False)


def integers(a) -> np.ndarray:
    """A flat integer array, without copying where it already is one (any integer width)."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        a = a.astype(np.int64)
    return a.ravel()


def groups(indexes: np.ndarray):
    """Coding order: (order, [(table, start, end), ...]) grouping equal table indexes."""
    order = np.argsort(indexes, kind="stable")
    sorted_idx = indexes[order]
    bounds = np.flatnonzero(np.diff(sorted_idx)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [len(sorted_idx)]]).astype(np.int64)
    return order, [(int(sorted_idx[s]), int(s), int(e)) for s, e in zip(starts, ends) if e > s]


def by_channel(shape: tuple) -> np.ndarray:
    """Table indexes of a per-channel coding (a factorized latent, a hyper-latent): each value of
    an (N, C, H, W) array takes the table of its channel."""
    return np.broadcast_to(np.arange(shape[1], dtype=np.int32).reshape(1, -1, 1, 1), shape)


def put(encoder, symbols: np.ndarray, indexes: np.ndarray, pmfs: list[np.ndarray], offsets: np.ndarray,
        model: Callable[[int], object]) -> list[int]:
    """Range-code flat integer `symbols` onto `encoder`, symbol i with table `indexes[i]` (whose
    constriction model is `model(table)`), grouped by table; returns the escaped values in coding
    order."""
    order, runs = groups(indexes)
    sorted_sym = symbols[order]
    escapes: list[int] = []
    for t, s, e in runs:
        n = len(pmfs[t]) - 1
        v = sorted_sym[s:e] - int(offsets[t])
        out = (v < 0) | (v >= n)
        if out.any():
            escapes.extend(int(x) for x in sorted_sym[s:e][out])
            v = np.where(out, n, v)
        encoder.encode(v.astype(np.int32), model(t))
    return escapes


def take(decoder, indexes: np.ndarray, pmfs: list[np.ndarray], offsets: np.ndarray, model: Callable[[int], object],
         escapes: "EscapeReader", dtype=np.int32) -> np.ndarray:
    """Inverse of put(): the flat symbols of flat table `indexes`, decoded from `decoder` (escaped
    values read from `escapes`), as `dtype`."""
    order, runs = groups(indexes)
    sorted_sym = np.empty(len(indexes), dtype=dtype)
    for t, s, e in runs:
        n = len(pmfs[t]) - 1
        try:
            v = np.asarray(decoder.decode(model(t), int(e - s)), dtype=dtype)
        except Exception as exc:  # constriction reports invalid data as an exception
            raise CodingError(f"corrupt entropy-coded stream ({exc})") from None
        out = v == n
        v = v + int(offsets[t])
        if out.any():
            v[out] = escapes.take(int(out.sum()))
        sorted_sym[s:e] = v
    symbols = np.empty_like(sorted_sym)
    symbols[order] = sorted_sym
    return symbols


def decoder(data: bytes):
    """A range decoder over the 32-bit words of `data`."""
    c = constriction()
    if len(data) % 4:
        raise CodingError("corrupt entropy-coded stream (length not a multiple of 4)")
    return c.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))


def encode(symbols: np.ndarray, indexes: np.ndarray, pmfs: list[np.ndarray], offsets: np.ndarray) -> tuple[bytes, list[int]]:
    """Range-code integer `symbols` (any shape), symbol i with table `indexes[i]`.

    Returns the compressed bytes and the list of escaped values, in coding order.
    """
    encoder = constriction().stream.queue.RangeEncoder()
    # int32 or int64 as given: no widening copy of a large image's symbols
    escapes = put(encoder, integers(symbols), integers(indexes), pmfs, offsets, lambda t: categorical(pmfs[t]))
    words = encoder.get_compressed().astype("<u4")
    return words.tobytes(), escapes


def decode(data: bytes, indexes: np.ndarray, pmfs: list[np.ndarray], offsets: np.ndarray, escapes: "EscapeReader") -> np.ndarray:
    """Inverse of encode(): returns int32 symbols (|symbols| <= ESCAPE_LIMIT < 2**31) with the shape
    of `indexes`."""
    rd = decoder(data)
    shape = np.shape(indexes)
    indexes = integers(indexes)
    if indexes.size and (indexes.min() < 0 or indexes.max() >= len(pmfs)):
        raise CodingError("table index out of range")
    symbols = take(rd, indexes, pmfs, offsets, lambda t: categorical(pmfs[t]), escapes)
    return symbols.reshape(shape)


def pack_escapes(values: list[int]) -> bytes:
    """Zig-zag LEB128 varints."""
    out = bytearray()
    for v in values:
        if not -ESCAPE_LIMIT <= v < ESCAPE_LIMIT:
            raise ValueError("escaped symbol out of range")
        out += encode_varint((v << 1) if v >= 0 else ((-v << 1) - 1))
    return bytes(out)


class EscapeReader:
    """Reads the zig-zag varints of pack_escapes() in order; errors on overrun."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, count: int) -> np.ndarray:
        vals = np.empty(count, dtype=np.int64)
        for i in range(count):
            u, shift = 0, 0
            while True:
                if self.pos >= len(self.data) or shift > 35:
                    raise CodingError("corrupt escape stream")
                b = self.data[self.pos]
                self.pos += 1
                u |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            v = (u >> 1) if not u & 1 else -((u + 1) >> 1)
            if not -ESCAPE_LIMIT <= v < ESCAPE_LIMIT:
                raise CodingError("corrupt escape stream (value out of range)")
            vals[i] = v
        return vals

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise CodingError("corrupt escape stream (unused bytes)")


def unpack_tables(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The probability tables of a model's packed tensors (inverse of entropy.pack_tables); rejects
    lengths that do not add up."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0 or lengths.min() < 2 or lengths.sum() != len(flat):
        raise ValueError("inconsistent probability tables")
    ends = np.cumsum(lengths)
    return [flat[e - n : e] for n, e in zip(lengths, ends)]

"""Range coding of a fitted image: its parameters, then its latents phase by phase, in one stream.

Both sides walk the same passes (`walk`): planes coarsest first, the four phases of each plane in
context.PHASES order.  In each pass the integer ARM gives every latent of the phase a table
(table_index) and a centre; the symbol coded is latent - centre, grouped by table as in
coding.py.  Symbols outside their table are escaped into a second stream of varints.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import coding
from ..coding import CodingError, EscapeReader, pack_escapes
from . import context
from .header import Structure, mean_steps, plane_sizes
from .intarm import WEIGHT_LIMIT
from .tables import table_index, tables as laplace_tables

LATENT_LIMIT = 1 << 20  # |latent| a decoder accepts (an escape may claim up to 2**30)


class _Models:
    """constriction's categorical models of one set of Laplace tables (tables.tables), made once each."""

    def __init__(self, steps: int):
        self.steps = steps
        self.pmfs, self.offsets = laplace_tables(steps)
        self._cache: dict[int, object] = {}

    def __getitem__(self, t: int):
        m = self._cache.get(t)
        if m is None:
            m = self._cache[t] = coding.categorical(self.pmfs[t])
        return m


_MODELS: dict[int, _Models] = {}


def _models(s: Structure) -> _Models:
    """The tables of files of structure s (header.mean_steps of its version)."""
    steps = mean_steps(s.version)
    if steps not in _MODELS:
        _MODELS[steps] = _Models(steps)
    return _MODELS[steps]


class Writer:
    def __init__(self, s: Structure):
        self.enc = coding.constriction().stream.queue.RangeEncoder()
        self.escapes: list[int] = []
        self.m = _models(s)

    def put(self, symbols: np.ndarray, tables: np.ndarray) -> None:
        self.escapes += coding.put(self.enc, coding.integers(symbols), coding.integers(tables), self.m.pmfs,
                                   self.m.offsets, self.m.__getitem__)

    def finish(self) -> tuple[bytes, bytes]:
        return self.enc.get_compressed().astype("<u4").tobytes(), pack_escapes(self.escapes)


class Reader:
    def __init__(self, s: Structure, data: bytes, escapes: bytes):
        self.dec = coding.decoder(data)
        self.esc = EscapeReader(escapes)
        self.m = _models(s)

    def get(self, tables: np.ndarray) -> np.ndarray:
        return coding.take(self.dec, coding.integers(tables), self.m.pmfs, self.m.offsets, self.m.__getitem__,
                           self.esc, np.int64)

    def finish(self) -> None:
        self.esc.finish()


def put_parameters(w: Writer, ints: list[np.ndarray], tables: tuple[int, ...]) -> None:
    for q, t in zip(ints, tables):
        flat = np.asarray(q, dtype=np.int64).reshape(-1)
        w.put(flat, np.full(flat.size, table_index(t, 0, w.m.steps)))


def get_parameters(r: Reader, s: Structure) -> list[np.ndarray]:
    out = []
    for shape, t in zip(s.tensor_shapes(), s.tables):
        n = int(np.prod(shape))
        q = r.get(np.full(n, table_index(t, 0, r.m.steps)))
        if np.abs(q).max(initial=0) > WEIGHT_LIMIT:
            raise CodingError("corrupt parameter stream (a network weight out of range)")
        out.append(q.reshape(shape))
    return out


def walk(s: Structure, width: int, height: int, arm, code: Callable[[int, int, np.ndarray, np.ndarray], np.ndarray],
         dtype: type = np.float64) -> list[np.ndarray]:
    """Every pass, coarsest plane first: `code(level, phase, tables, centres)` returns the latents of
    that phase (known to the encoder, decoded by the decoder).  Returns the planes, finest first.
    The planes are held in `dtype` (float32 holds every latent a decoder accepts exactly: the
    result does not depend on it)."""
    sizes = plane_sizes(width, height, s.levels)
    steps = mean_steps(s.version)
    planes: list[np.ndarray | None] = [None] * s.levels
    for k in reversed(range(s.levels)):
        h, w = sizes[k]
        y = np.zeros((h, w), dtype=dtype)
        coarse = planes[k + 1] if k + 1 < s.levels else None
        for p in range(len(context.PHASES)):
            a, b, ni, nj = context.phase_positions(h, w, p)
            if not ni * nj:
                continue
            centre, fraction, level = arm(context.coded_features(y, coarse, p), p, k)
            q = code(k, p, table_index(level, fraction, steps), centre)
            y[a::2, b::2] = q.reshape(ni, nj)
        planes[k] = y
    return planes


def encode_latents(w: Writer, s: Structure, planes: list[np.ndarray], arm) -> None:
    """planes: integer arrays (h_k, w_k), finest first."""
    height, width = planes[0].shape

    def code(k, p, tables, centres):
        q = np.asarray(context.phase_values(planes[k], p), dtype=np.int64).reshape(-1)
        w.put(q - centres, tables)
        return q

    walk(s, width, height, arm, code)


def decode_latents(r: Reader, s: Structure, width: int, height: int, arm, dtype: type = np.float64
                   ) -> list[np.ndarray]:
    def code(k, p, tables, centres):
        q = r.get(tables) + centres
        if np.abs(q).max(initial=0) > LATENT_LIMIT:
            raise CodingError("corrupt latent stream (a latent out of range)")
        return q

    return walk(s, width, height, arm, code, dtype)

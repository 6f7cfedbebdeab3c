"""Decoding a .lat file without torch: the bundled codecs' decoder in numpy.

`aecli decompress` is mostly start-up: importing torch alone takes about a second on the project's
CPU, more than decoding a 768x512 image.  This module decodes the files of the bundled models
(hyperprior, checkerboard and factorized kinds) with numpy only, so that a decompress starts,
decodes and exits in about the time torch takes to import (README, "Speed as you time it").

What decides the entropy coder's probabilities is integer arithmetic (intnet.py): every
convolution here is the same sum of integer products, exact in float64 whatever the summation
order, so the latents are *identical* to the torch decoder's (tests/test_numpy_decoder.py checks
this symbol for symbol).  The synthesis runs in float32 like the torch one; a different summation
order can move a pixel by one level now and then, as between two machines (docs/format.md,
"Pixels").  Used for bundled models on the CPU up to MAX_PIXELS; other files (a user model, whose
checks need torch; --exact; a GPU; larger images, which the torch decoder tiles) take the torch
decoder (codec/api.py).

Layouts: the entropy-coded latents are (C, H, W) as the format orders them; the networks work on
channels-last (H, W, C) arrays, so that a convolution is one matrix product per band of rows.
"""

from __future__ import annotations

import numpy as np

from .. import format as latformat
from . import coding, decoding

ACT_BITS = 12  # intnet's fixed point (kept equal by tests/test_numpy_decoder.py)
ACT_LIMIT = (1 << 22) - 1
MAX_PIXELS = 1 << 22  # padded coded pixels decoded here (4.2 MP; peak memory about 0.6 GB), beyond: torch
BAND_BYTES = 48 << 20  # largest column buffer of one matrix product
KINDS = ("hyperprior", "checkerboard", "factorized")
# a position's 3x3 neighbours in the columns' order: the 2x2 block every output phase of a stride-2
# transposed convolution reads first, so that each phase's neighbours are one or two runs of columns
_NEIGHBOURS = [(0, 0), (0, 1), (1, 0), (1, 1), (-1, 0), (-1, 1), (0, -1), (1, -1), (-1, -1)]
# output phase (row parity, column parity) -> the runs of _NEIGHBOURS it reads (25 taps in all)
_PHASES = {(1, 1): ((0, 4),), (0, 1): ((0, 6),), (1, 0): ((0, 4), (6, 8)), (0, 0): ((0, 9),)}


def usable(files, lat: latformat.LatFile, exact: bool, device: str) -> bool:
    """Whether this decoder takes `lat` (decoded with the model `files`)."""
    arch = files.meta.get("architecture") or {}
    if exact or device != "cpu" or not files.bundled or arch.get("kind") not in KINDS:
        return False
    _, _, pw, ph = decoding.sizes(lat, decoding.ALIGN[arch["kind"]])
    return pw * ph <= MAX_PIXELS


# ---- convolutions as matrix products ----------------------------------------------------------
def _banded(x: np.ndarray, wmat, bias: np.ndarray, up: bool) -> np.ndarray:
    """A 3x3-neighbourhood convolution of (H, W, C) as matrix products over bands of rows: the
    columns of a band hold each position's 3x3 neighbourhood (zero-padded) in the order of
    _NEIGHBOURS.  `up`: a stride-2 transposed convolution, `wmat` from deconv_matrix: each output
    phase is the product of its runs of columns (exactly its taps), written to every other row and
    column of the (2H, 2W, Cout) output; else `wmat` is conv3_matrix's (9 * C, Cout)."""
    h, w, c = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    cout = bias.shape[0]
    out = np.empty((2 * h, 2 * w, cout) if up else (h, w, cout), dtype=x.dtype)
    step = max(1, min(h, BAND_BYTES // max(1, w * 9 * c * x.itemsize)))
    cols = np.empty((step, w, 9, c), dtype=x.dtype)  # one buffer for every band
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        band = cols[:r1 - r0]
        for n, (di, dj) in enumerate(_NEIGHBOURS):
            band[:, :, n] = xp[r0 + 1 + di:r1 + 1 + di, 1 + dj:1 + dj + w]
        flat = band.reshape((r1 - r0) * w, 9 * c)
        if not up:
            out[r0:r1] = (flat @ wmat + bias).reshape(r1 - r0, w, cout)
            continue
        for (py, px), runs in wmat:
            y = flat[:, runs[0][0] * c:runs[0][1] * c] @ runs[0][2]
            for lo, hi, m in runs[1:]:
                y += flat[:, lo * c:hi * c] @ m
            y += bias
            out[2 * r0 + py:2 * r1:2, px::2] = y.reshape(r1 - r0, w, cout)
    return out


def _scattered(x: np.ndarray, wmat: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A 5x5 stride-2 transposed convolution to few channels (the synthesis's last layer): each
    input position's 25 taps by one matrix product (wmat: (25 * Cout, Cin), tap-major), as planes
    (25 * Cout, H * W) added into the output at 2i + t - 2 (cheaper than _banded's columns when
    Cout is small)."""
    h, w, c = x.shape
    cout = wmat.shape[0] // 25
    out = np.zeros((cout, 2 * h + 4, 2 * w + 4), dtype=x.dtype)
    step = max(1, min(h, BAND_BYTES // max(1, w * wmat.shape[0] * x.itemsize)))
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        planes = (wmat @ x[r0:r1].reshape(-1, c).T).reshape(5, 5, cout, r1 - r0, w)
        for ty in range(5):
            for tx in range(5):
                out[:, 2 * r0 + ty:2 * r1 + ty:2, tx:2 * w + tx:2] += planes[ty, tx]
    out = out[:, 2:2 * h + 2, 2:2 * w + 2].transpose(1, 2, 0)
    return out + bias


def taps_matrix(weight: np.ndarray) -> np.ndarray:
    """A transposed convolution's weight (Cin, Cout, 5, 5) as _scattered's matrix (25 * Cout, Cin)."""
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))


def deconv_matrix(weight: np.ndarray) -> list:
    """A 5x5, stride-2, padding-2 transposed convolution's weight (Cin, Cout, 5, 5) as _banded's
    phases: output (2m + py, 2n + px) reads input (m + di, n + dj) through tap
    (py + 2 - 2 di, px + 2 - 2 dj); per phase, its runs of neighbours (lo, hi, matrix (run * Cin, Cout))."""
    cin, cout, k, _ = weight.shape
    if k != 5:
        raise ValueError("only 5x5 stride-2 transposed convolutions")
    phases = []
    for (py, px), runs in _PHASES.items():
        mats = []
        for lo, hi in runs:
            taps = [(py + 2 - 2 * di, px + 2 - 2 * dj) for di, dj in _NEIGHBOURS[lo:hi]]
            if not all(0 <= t < k for tap in taps for t in tap):
                raise AssertionError("a phase's run reads a tap the kernel does not have")
            mats.append((lo, hi, np.ascontiguousarray(np.concatenate([weight[:, :, ty, tx] for ty, tx in taps]))))
        phases.append(((py, px), mats))
    return phases


def conv3_matrix(weight: np.ndarray) -> np.ndarray:
    """A 3x3 stride-1 'same' convolution's weight (Cout, Cin, 3, 3) as the matrix (9 * Cin, Cout)."""
    cout, cin = weight.shape[:2]
    return np.stack([weight[:, :, di + 1, dj + 1].T for di, dj in _NEIGHBOURS]).reshape(9 * cin, cout)


# ---- the integer networks (exact in float64) -------------------------------------------------
class IntNet:
    """intnet's integer layers: each output is floor(acc * 2**-shift + 1/2), ReLU between layers,
    saturated to +-ACT_LIMIT.  Layers are ("deconv" | "conv3" | "point", matrix, bias, shift)."""

    def __init__(self, layers: list[tuple[str, np.ndarray, np.ndarray, int]]):
        self.layers = layers

    def __call__(self, a: np.ndarray) -> np.ndarray:
        """(H, W, C) integer activations (float64), or (K, C) for a pointwise network."""
        a = np.clip(a.astype(np.float64), -ACT_LIMIT, ACT_LIMIT)
        last = len(self.layers) - 1
        for i, (kind, mat, bias, shift) in enumerate(self.layers):
            acc = a @ mat + bias if kind == "point" else _banded(a, mat, bias, up=kind == "deconv")
            a = np.floor(acc * 2.0**-shift + 0.5)
            if i < last:
                np.maximum(a, 0, out=a)
            np.clip(a, -ACT_LIMIT, ACT_LIMIT, out=a)
        return a


def _int_layer(t: dict, prefix: str, kind: str) -> tuple[str, np.ndarray, np.ndarray, int]:
    w = t[f"{prefix}.weight"].astype(np.float64)
    mat = {"deconv": deconv_matrix, "conv3": conv3_matrix, "point": lambda v: np.ascontiguousarray(v[:, :, 0, 0].T)}[kind](w)
    return kind, mat, t[f"{prefix}.bias"].astype(np.float64), int(t[f"{prefix}.shift"][0])


# ---- the model ----------------------------------------------------------------------------------
def _flushed(a: np.ndarray) -> np.ndarray:
    """Subnormal float32 weights (GDN's reparameterisation leaves some, around 1e-40) set to zero:
    a product with them is a hundred times slower on x86, and their share of a sum is nil."""
    return np.where(np.abs(a) < np.finfo(np.float32).tiny, np.float32(0), a).astype(np.float32)


def _nonneg(p: np.ndarray, floor: float) -> np.ndarray:
    """GDN's reparameterisation (layers.GDN._nonneg), in float32."""
    pedestal = np.float32(2.0**-18)
    p = np.maximum(p, np.float32((floor + 2.0**-18) ** 0.5))
    return p * p - pedestal


class NumpyCodec:
    """A bundled codec model's decoder in numpy (see the module's docstring)."""

    @classmethod
    def load(cls, files, device: str = "cpu") -> "NumpyCodec":
        """From a model's files, checked against its fingerprint (cache.LoadedModel's protocol)."""
        from ..registry import load_arrays

        return cls(files, load_arrays(files))

    def __init__(self, files, tensors: dict):
        arch = files.meta["architecture"]
        self.files = files
        self.name, self.fingerprint, self.kind = files.name, files.fingerprint, arch["kind"]
        self.m = int(arch["m"])
        self.qualities = list(files.meta.get("qualities") or range(1, len(arch["lambdas"]) + 1))
        t = tensors
        self.y_pmfs = coding.unpack_tables(t["tables.y.pmf"], t["tables.y.len"])
        self.y_offsets = t["tables.y.offset"]
        self.inv_gain = np.exp(t["inv_gain"].astype(np.float32))
        self.g_s = [self._synthesis_layer(t, i) for i in range(7)]
        if self.kind != "factorized":
            self.nh = int(arch.get("nh", arch["n"]))
            self.z_pmfs = coding.unpack_tables(t["tables.z.pmf"], t["tables.z.len"])
            self.z_offsets = t["tables.z.offset"]
            self.thresholds = t["tables.y.thresholds"].astype(np.float64)
            self.inv_hgain = t["int.inv_hgain"].astype(np.float64)
            self.h_s = IntNet([_int_layer(t, "int.h_s.0", "deconv"), _int_layer(t, "int.h_s.1", "deconv"),
                               _int_layer(t, "int.h_s.2", "conv3")])
        if self.kind == "checkerboard":
            self.ctx_w = t["int.ctx.0.weight"].astype(np.float64)  # (2M, M, 5, 5)
            self.ctx_b = t["int.ctx.0.bias"].astype(np.float64)
            self.ctx_shift = int(t["int.ctx.0.shift"][0])
            self.ep = IntNet([_int_layer(t, f"int.ep.{i}", "point") for i in range(3)])

    @staticmethod
    def _synthesis_layer(t: dict, i: int):
        if i % 2:  # inverse GDN: x * (beta + gamma |x|)
            gamma, beta = _flushed(_nonneg(t[f"g_s.{i}.gamma"], 0.0)), _flushed(_nonneg(t[f"g_s.{i}.beta"], 1e-6))
            return "igdn", np.ascontiguousarray(gamma.T), beta
        weight, bias = _flushed(t[f"g_s.{i}.weight"]), _flushed(t[f"g_s.{i}.bias"])
        if weight.shape[1] <= 8:  # few output channels: scatter each input's taps
            return "scatter", taps_matrix(weight), bias
        return "deconv", deconv_matrix(weight), bias

    # ---- latents -------------------------------------------------------------------------------
    def decode_latents(self, streams: list[bytes], qi: int, lh: int, lw: int) -> np.ndarray:
        """y_hat (M, lh, lw) float32: the same values as the torch decoder's."""
        m = self.m
        esc = coding.EscapeReader(streams[-1])
        if self.kind == "factorized":
            idx = np.broadcast_to(np.arange(m, dtype=np.int32).reshape(-1, 1, 1), (m, lh, lw))
            y = coding.decode(streams[0], idx, self.y_pmfs, self.y_offsets, esc).astype(np.float32)
            esc.finish()
            return y
        n = self.nh
        z_idx = np.broadcast_to(np.arange(n, dtype=np.int32).reshape(-1, 1, 1), (n, lh // 4, lw // 4))
        z = np.clip(coding.decode(streams[0], z_idx, self.z_pmfs, self.z_offsets, esc), -(1 << 10), 1 << 10)
        hyper = self.h_s(z.transpose(1, 2, 0).astype(np.float64) * self.inv_hgain[qi])  # (lh, lw, 2M)
        if self.kind == "checkerboard":
            y = self._checkerboard(streams[1:3], hyper, esc)
        else:
            idx, means = self._tables_and_means(hyper.reshape(-1, 2 * m).T)
            sym = coding.decode(streams[1], idx.reshape(m, lh, lw), self.y_pmfs, self.y_offsets, esc)
            y = sym.astype(np.float32) + means.reshape(m, lh, lw)
        esc.finish()
        return y

    def _tables_and_means(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(2M, K) integer scales and means -> table indexes and float32 means (M, K)."""
        scales, means = params[:self.m], params[self.m:]
        idx = np.clip(np.searchsorted(self.thresholds, scales, side="left"), 0, len(self.y_pmfs) - 1)
        return idx.astype(np.int32), (means * 2.0**-ACT_BITS).astype(np.float32)

    def _checkerboard(self, streams: list[bytes], hyper: np.ndarray, esc) -> np.ndarray:
        """Anchors ((row + column) even) from the hyperprior alone, then the rest given them."""
        lh, lw, m2 = hyper.shape
        m = m2 // 2
        first = (np.add.outer(np.arange(lh), np.arange(lw)) % 2 == 0)
        hyper = hyper.reshape(-1, m2)
        y = np.zeros((m, lh * lw), dtype=np.float32)
        anchors = np.zeros((lh, lw, m), dtype=np.float64)  # decoded anchors at 2**-ACT_BITS, zero elsewhere
        for half, data in ((first, streams[0]), (~first, streams[1])):
            pos = np.flatnonzero(half)
            h = hyper[pos]  # (K, 2M)
            context = np.zeros_like(h) if half is first else self._context(anchors, pos)
            out = self.ep(np.concatenate([h, context], axis=1)) + h
            idx, means = self._tables_and_means(np.clip(out, -ACT_LIMIT, ACT_LIMIT).T)
            sym = coding.decode(data, idx, self.y_pmfs, self.y_offsets, esc).astype(np.float32)
            y[:, pos] = sym + means
            if half is first:
                unit = np.float32(2.0**ACT_BITS)
                a = np.clip(sym * unit + means * unit, -ACT_LIMIT, ACT_LIMIT)  # exact in float32 (intnet)
                anchors.reshape(-1, m)[pos] = a.T
        return y.reshape(m, lh, lw)

    def _context(self, anchors: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The 5x5 context convolution at the flat positions `pos`, reading the taps that can hold
        an anchor ((row + column) offset odd), as intnet.IntLayer.at: (K, 2M)."""
        lh, lw, m = anchors.shape
        padded = np.pad(anchors, ((2, 2), (2, 2), (0, 0)))
        rows, cols = np.divmod(pos, lw)
        taps = [(i, j) for i in range(5) for j in range(5) if (i + j) % 2]
        gathered = np.concatenate([padded[rows + i, cols + j] for i, j in taps], axis=1)  # (K, taps * M)
        weight = np.concatenate([self.ctx_w[:, :, i, j] for i, j in taps], axis=1)  # (2M, taps * M)
        acc = gathered @ weight.T + self.ctx_b
        return np.clip(np.floor(acc * 2.0**-self.ctx_shift + 0.5), -ACT_LIMIT, ACT_LIMIT)

    # ---- pixels --------------------------------------------------------------------------------
    def synthesise(self, y_hat: np.ndarray, qi: int) -> np.ndarray:
        """uint8 (H, W, 3) pixels of the latents (M, h, w)."""
        x = np.ascontiguousarray(y_hat.transpose(1, 2, 0)) * self.inv_gain[qi]
        for kind, mat, bias in self.g_s:
            if kind == "igdn":  # (one matrix product over all positions, not one per row)
                flat = x.reshape(-1, x.shape[2])
                norm = np.abs(flat) @ mat
                norm += bias
                norm *= flat
                x = norm.reshape(x.shape)
            elif kind == "scatter":
                x = _scattered(x, mat, bias)
            else:
                x = _banded(x, mat, bias, up=True)
        return np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)


def load(files) -> NumpyCodec:
    """The numpy decoder of a bundled model, loaded once per process (aecli/cache.py)."""
    from ..cache import loaded

    return loaded(NumpyCodec, files)


def decompress(lat: latformat.LatFile, files, max_pixels: int | None = None):
    """The image of `lat`, decoded with the bundled model `files` (usable() said yes)."""
    codec = load(files)
    p = decoding.plan(lat, codec.name, codec.fingerprint, codec.qualities, codec.kind, decoding.ALIGN[codec.kind],
                      max_pixels)
    try:
        y_hat = codec.decode_latents(p.streams, p.qi, p.ph // 16, p.pw // 16)
    except coding.CodingError as exc:
        raise decoding.DecodeError(f"corrupt .lat file: {exc}") from None
    return decoding.finish(codec.synthesise(y_hat, p.qi)[:p.ch, :p.cw], lat, p.alpha)

"""The ARM as the coder runs it: exact integer arithmetic in numpy, the same integers on every
machine (and no torch to import: `aecli decompress` of a fitted file needs numpy alone).

The fit trains the ARM in floating point (nets.Arm); in a file its weights and biases are integers
at 2**-exponent, and the encoder and the decoder both run them here, in intnet's fixed point:
activations are integers at 2**-ACT_BITS, each layer one matrix product of integers in float64
(every partial sum below 2**53, so exact in any summation order), rescaled by a power of two and
rounded half up (numpy_decoder.IntNet, the autoencoder's numpy decoder's integer layers).  The header's bounds keep the sums exact: at most 32 inputs of at most ACT_LIMIT
times weights of at most WEIGHT_LIMIT, under 2**43.
"""

from __future__ import annotations

import numpy as np

from ..coding import CodingError
from ..numpy_decoder import ACT_BITS, ACT_LIMIT, IntNet  # intnet's fixed point in numpy
from . import context
from .header import COARSE, OFFSETS, PHASES, SCALE_LEVELS, Structure, mean_steps

__all__ = ["ACT_BITS", "ACT_LIMIT", "WEIGHT_LIMIT", "IntArm", "fold_pass", "pass_columns"]
WEIGHT_LIMIT = (1 << 15) - 1  # |parameter integer| of any fitted network (intnet's weight limit)


def pass_columns(phase: int) -> list[int]:
    """The ARM's input columns that compact features of a pass fill: its visible neighbours, then
    the coarse values (the one-hots are constant in a pass)."""
    return [i for i, v in enumerate(context.available(phase)) if v] + list(range(OFFSETS, OFFSETS + COARSE))


def fold_pass(w, b, phase: int, level: int):
    """The ARM's first layer (weight (out, in), bias) as pass (phase, level) runs it: the columns
    its compact features fill, and the pass's one-hot columns added to the bias (float or integer,
    torch or numpy, alike)."""
    return w[:, pass_columns(phase)], b + w[:, OFFSETS + COARSE + phase] + w[:, OFFSETS + COARSE + PHASES + level]


CHUNK = 1024  # latents per product: small enough that BLAS keeps to one thread (threads cost 2 to 3 times more here)


class IntArm:
    """Compact features (F, n) of one pass (context.coded_features) -> (centre, mean fraction,
    scale level) per latent.  Per pass, the first layer keeps only the columns of the features
    that can be non-zero; the one-hots of the pass (phase, level) are added to its bias: the same
    integer sums with their zero terms left out and their constant terms summed first, exact
    either way."""

    def __init__(self, ints: list[np.ndarray], exponents: tuple[int, ...], s: Structure):
        self.steps = mean_steps(s.version)
        n = s.arm_tensors() // 2
        self.weights = [np.asarray(ints[2 * i], dtype=np.int64) for i in range(n)]
        self.biases = [np.asarray(ints[2 * i + 1], dtype=np.int64) for i in range(n)]
        self.shifts = []
        for i in range(n):
            if exponents[2 * i + 1] != exponents[2 * i]:
                raise CodingError("corrupt fitted header (an ARM layer's weight and bias have different steps)")
            self.shifts.append(exponents[2 * i])
        self._nets: dict[tuple[int, int], IntNet] = {}

    def net(self, phase: int, level: int) -> IntNet:
        """The integer network of one pass: its first layer takes the visible neighbours and coarse
        values, with the one-hots in its bias (weights as (in, out) float64 matrices, exact)."""
        key = (phase, level)
        if key not in self._nets:
            w0, b0 = fold_pass(self.weights[0], self.biases[0], phase, level)
            layers = zip([w0] + self.weights[1:], [b0] + self.biases[1:], self.shifts)
            self._nets[key] = IntNet([("point", w.T.astype(np.float64), (b * (1 << ACT_BITS)).astype(np.float64), shift)
                                      for w, b, shift in layers])
        return self._nets[key]

    def __call__(self, features: np.ndarray, phase: int, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """features: (F, n) integer-valued -> (centre, fraction, scale) int64 arrays: the mean is
        centre + fraction / self.steps, with fraction in -steps/2 .. steps/2 - 1 (tables.table_index)."""
        net = self.net(phase, level)
        a = np.empty((2, features.shape[1]))  # units of 2**-ACT_BITS
        for c in range(0, features.shape[1], CHUNK):
            a[:, c:c + CHUNK] = net(np.ascontiguousarray(features[:, c:c + CHUNK].T) * float(1 << ACT_BITS)).T
        n = self.steps  # a power of two: every step below is exact
        steps = np.floor(a[0] * (n * 2.0 ** -ACT_BITS) + 0.5)  # the mean in steps of 1/n
        centre = np.floor((steps + n // 2) * (1.0 / n))
        fraction = steps - n * centre
        level_out = np.clip(np.floor(a[1] * 2.0 ** -ACT_BITS + 0.5), 0, SCALE_LEVELS - 1)
        return centre.astype(np.int64), fraction.astype(np.int64), level_out.astype(np.int64)

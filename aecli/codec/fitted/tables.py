"""The Laplace tables of the fitted codec's coded integers (numpy only: the decoder needs no torch).

A latent q has a Laplace density of mean mu and scale b; its probability is the mass of the unit
bin around q.  The ARM gives b as an index t on SCALE_LEVELS log-spaced scales (b = B_MIN * e**(t *
STEP)) and mu in steps of 1/n (n = header.mean_steps: 4 for files of structure versions 1 and 2,
16 from version 3), so the coder needs one table per (scale, step of mean): symbol q - centre, with
centre the integer nearest to mu and the table's own mean the remaining steps (-n/2 .. n/2 - 1).
Network parameters use the zero-mean tables (the same in every set).  Tables are computed once from
float64 formulas and rounded to integer counts (coding.quantize_pmf), as the codec's other tables.
The fit's differentiable likelihood of the same model is laplace.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..coding import quantize_pmf
from .header import SCALE_LEVELS, VERSION, mean_steps

B_MIN, B_MAX = 0.02, 64.0
STEP = math.log(B_MAX / B_MIN) / (SCALE_LEVELS - 1)
PARAMETER_STEPS = mean_steps(VERSION)  # parameters use the zero-mean tables, the same in every set: the writers' set
TAIL = 2.0 ** -24  # mass left to the escape symbol


def table_index(scale: np.ndarray, fraction: np.ndarray, steps: int) -> np.ndarray:
    """The table of scale level `scale` (0..SCALE_LEVELS-1) and mean `fraction` / `steps`
    (fraction -steps/2 .. steps/2 - 1), in the set of tables(steps)."""
    return scale * steps + fraction + steps // 2


@functools.lru_cache(maxsize=2)
def tables(steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(pmfs, offsets) for every table of a mean resolution of 1/`steps` (header.mean_steps):
    table_index(s, f, steps) covers symbols offsets[i] .. with the escape symbol last."""
    pmfs, offsets = [], []
    for s in range(SCALE_LEVELS):
        b = B_MIN * math.exp(s * STEP)
        r = int(math.ceil(b * math.log(1 / TAIL))) + 1
        for f in range(-(steps // 2), steps // 2):
            mu = f / steps
            edges = np.arange(-r, r + 2, dtype=np.float64) - 0.5 - mu
            cdf = np.where(edges < 0, 0.5 * np.exp(np.minimum(edges, 0) / b), 1 - 0.5 * np.exp(-np.maximum(edges, 0) / b))
            pmf = np.diff(cdf)
            escape = cdf[0] + (1 - cdf[-1])
            pmfs.append(quantize_pmf(pmf, escape))
            offsets.append(-r)
    return pmfs, np.asarray(offsets, dtype=np.int32)


def parameter_table(values: np.ndarray) -> tuple[int, float]:
    """(the zero-mean scale level that codes these integers in the fewest bits, those bits)."""
    if not np.size(values):
        return 0, 0.0
    pmfs, offsets = tables(PARAMETER_STEPS)
    best, best_bits = 0, math.inf
    for s in range(SCALE_LEVELS):
        i = int(table_index(np.int64(s), np.int64(0), PARAMETER_STEPS))
        pmf = pmfs[i].astype(np.float64)
        logp = np.log2(pmf / pmf.sum())
        n = len(pmf) - 1
        idx = np.asarray(values, dtype=np.int64) - int(offsets[i])
        out = (idx < 0) | (idx >= n)
        cost = -logp[np.where(out, n, idx)].sum() + 32 * out.sum()
        if cost < best_bits:
            best, best_bits = s, cost
    return best, float(best_bits)

"""What the ARM sees: for each latent, its 8 neighbours in the same plane (those already decoded),
the 3x3 values of the coarser plane around its parent, and which phase and level it is in.

Each plane is decoded in PHASES = 4 passes over the 2x2 polyphase components, (0,0), (1,1), (0,1),
(1,0) in that order: a latent sees the neighbours of earlier phases only, so every pass is one
vectorised step and a whole image decodes in 4 x levels passes.  Planes go coarsest first; the
coarsest plane has no coarser one (its coarse values read as zeros).

`phase_features` gives the features of one phase of a plane as torch tensors, for the fitter, which
computes every phase of every plane from the real-valued latents; `coded_features` gives the same
compact features in numpy for the coder (encoder and decoder alike), one phase at a time from a
partly decoded plane.  This module needs no torch until the fitter calls `phase_features`.
"""

from __future__ import annotations

import numpy as np

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))
NEIGHBOURS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
COARSE = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1))


def available(phase: int) -> list[bool]:
    """Which of NEIGHBOURS a latent of `phase` sees (those of earlier phases)."""
    a, b = PHASES[phase]
    return [PHASES.index(((a + dr) % 2, (b + dc) % 2)) < phase for dr, dc in NEIGHBOURS]


def phase_values(y, phase: int):
    """The latents of one phase of plane y (a tensor or an array), (rows, columns) of
    phase_positions, in raster order."""
    a, b = PHASES[phase]
    return y[a::2, b::2]


def phase_positions(h: int, w: int, phase: int) -> tuple[int, int, int, int]:
    """(first row, first column, rows, columns) of a phase's positions in an (h, w) plane."""
    a, b = PHASES[phase]
    return a, b, max(0, -(-(h - a) // 2)), max(0, -(-(w - b) // 2))


def windows(h: int, w: int, phase: int) -> tuple[list[tuple[slice, slice]], tuple[slice, slice]]:
    """Where a phase's context lies in its plane (h, w) zero-padded by 1: the (rows, columns)
    slices of each of NEIGHBOURS of its latents (in that order, visible or not), and those of the
    latents themselves; each slice gives phase_positions' rows x columns."""
    a, b, ni, nj = phase_positions(h, w, phase)

    def at(dr: int, dc: int) -> tuple[slice, slice]:
        return slice(1 + a + dr, 1 + a + dr + 2 * ni - 1, 2), slice(1 + b + dc, 1 + b + dc + 2 * nj - 1, 2)
    return [at(dr, dc) for dr, dc in NEIGHBOURS], at(0, 0)


def coarse_windows(rows: int, cols: int) -> list[tuple[slice, slice]]:
    """The slices of the coarser plane zero-padded by 1 that give the COARSE values around the
    parents of its first rows x columns (a phase's latents of the finer plane have those parents)."""
    return [(slice(1 + dr, 1 + dr + rows), slice(1 + dc, 1 + dc + cols)) for dr, dc in COARSE]


def coded_features(y: np.ndarray, coarse: np.ndarray | None, phase: int) -> np.ndarray:
    """The compact features (F, n) of the latents of one phase of plane y (h, w), as
    phase_features(..., compact=True).t() gives them, in float64: the visible neighbours, then the
    coarse 3x3 values."""
    h, w = y.shape
    _, _, ni, nj = phase_positions(h, w, phase)
    p = np.pad(y, 1)
    rows = [p[at] for at, v in zip(windows(h, w, phase)[0], available(phase)) if v]
    if coarse is None:
        rows += [np.zeros((ni, nj))] * len(COARSE)
    else:
        pc = np.pad(coarse, 1)
        rows += [pc[at] for at in coarse_windows(ni, nj)]
    return np.stack(rows).reshape(len(rows), -1).astype(np.float64)


def phase_features(y, coarse, phase: int, level: int, levels: int, compact: bool = False):
    """Features (n, F) of the latents of one phase of plane y (h, w), whose later phases are still
    zeros, in raster order of the phase.  `compact`: only the visible neighbours and the coarse
    values (the features that are not always 0 or constant in this pass; nets.IntArm folds the
    rest into its first layer's bias).  Torch tensors in and out."""
    import torch
    import torch.nn.functional as F

    h, w = y.shape
    _, _, ni, nj = phase_positions(h, w, phase)
    p = F.pad(y[None, None], (1, 1, 1, 1))[0, 0]
    same = [p[at] * float(v) for at, v in zip(windows(h, w, phase)[0], available(phase)) if v or not compact]
    if coarse is None:
        co = [y.new_zeros(ni, nj)] * len(COARSE)
    else:
        pc = F.pad(coarse[None, None], (1, 1, 1, 1))[0, 0]
        co = [pc[at] for at in coarse_windows(ni, nj)]
    ones = [] if compact else [y.new_full((ni, nj), float(i == phase)) for i in range(len(PHASES))]
    ones += [] if compact else [y.new_full((ni, nj), float(k == level)) for k in range(levels)]
    return torch.stack(same + co + ones).reshape(len(same) + len(co) + len(ones), -1).t()

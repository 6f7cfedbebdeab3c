"""What the ARM sees: for each latent, its 8 neighbours in the same plane (those already decoded),
the 3x3 values of the coarser plane around its parent, and which phase and level it is in.

Each plane is decoded in PHASES = 4 passes over the 2x2 polyphase components, (0,0), (1,1), (0,1),
(1,0) in that order: a latent sees the neighbours of earlier phases only, so every pass is one
vectorised step and a whole image decodes in 4 x levels passes.  Planes go coarsest first; the
coarsest plane has no coarser one (its coarse values read as zeros).

`plane_features` gives the features of a whole plane at once (fitting); `phase_features` those of
one phase of a partly decoded plane (coding).  Both give the same numbers for the same latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))
NEIGHBOURS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
COARSE = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1))


def available(phase: int) -> list[bool]:
    """Which of NEIGHBOURS a latent of `phase` sees (those of earlier phases)."""
    a, b = PHASES[phase]
    return [PHASES.index(((a + dr) % 2, (b + dc) % 2)) < phase for dr, dc in NEIGHBOURS]


def _onehots(phase: torch.Tensor, level: int, levels: int) -> list[torch.Tensor]:
    return [(phase == p).to(torch.get_default_dtype()) for p in range(len(PHASES))] + \
           [torch.full_like(phase, float(k == level), dtype=torch.get_default_dtype()) for k in range(levels)]


def phase_map(h: int, w: int) -> torch.Tensor:
    """(h, w) phase of every position."""
    r = torch.arange(h).view(-1, 1) % 2
    c = torch.arange(w).view(1, -1) % 2
    table = torch.zeros(2, 2, dtype=torch.long)
    for i, (a, b) in enumerate(PHASES):
        table[a, b] = i
    return table[r, c]


def constants(h: int, w: int, level: int, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (8, h*w) of visible neighbours, one-hots (4 + levels, h*w)) of a plane: fixed during a fit."""
    ph = phase_map(h, w)
    avail = torch.tensor([available(p) for p in range(len(PHASES))], dtype=torch.get_default_dtype())  # (4, 8)
    mask = avail[ph].permute(2, 0, 1).reshape(len(NEIGHBOURS), -1)
    return mask, torch.stack(_onehots(ph, level, levels)).reshape(len(PHASES) + levels, -1)


def plane_features(y: torch.Tensor, coarse: torch.Tensor | None, mask: torch.Tensor, onehots: torch.Tensor) -> torch.Tensor:
    """Features (h*w, F) of every latent of plane y (h, w), coarser plane `coarse` (ceil(h/2), ceil(w/2))."""
    h, w = y.shape
    p = F.pad(y[None, None], (1, 1, 1, 1))[0, 0]
    same = torch.stack([p[1 + dr:1 + dr + h, 1 + dc:1 + dc + w] for dr, dc in NEIGHBOURS]).reshape(len(NEIGHBOURS), -1)
    if coarse is None:
        co = y.new_zeros(len(COARSE), h * w)
    else:
        ch, cw = coarse.shape
        pc = F.pad(coarse[None, None], (1, 1, 1, 1))[0, 0]
        co = torch.stack([pc[1 + dr:1 + dr + ch, 1 + dc:1 + dc + cw] for dr, dc in COARSE])
        co = co.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :h, :w].reshape(len(COARSE), -1)
    return torch.cat([same * mask, co, onehots]).t()


def phase_positions(h: int, w: int, phase: int) -> tuple[int, int, int, int]:
    """(first row, first column, rows, columns) of a phase's positions in an (h, w) plane."""
    a, b = PHASES[phase]
    return a, b, max(0, -(-(h - a) // 2)), max(0, -(-(w - b) // 2))


def phase_features(y: torch.Tensor, coarse: torch.Tensor | None, phase: int, level: int, levels: int,
                   compact: bool = False) -> torch.Tensor:
    """Features (n, F) of the latents of one phase of plane y (h, w), whose later phases are still
    zeros, in raster order of the phase.  `compact`: only the visible neighbours and the coarse
    values (the features that are not always 0 or constant in this pass; nets.IntArm folds the
    rest into its first layer's bias)."""
    h, w = y.shape
    a, b, ni, nj = phase_positions(h, w, phase)
    p = F.pad(y[None, None], (1, 1, 1, 1))[0, 0]
    vis = available(phase)
    same = [p[1 + a + dr:1 + a + dr + 2 * ni - 1:2, 1 + b + dc:1 + b + dc + 2 * nj - 1:2] * float(v)
            for (dr, dc), v in zip(NEIGHBOURS, vis) if v or not compact]
    if coarse is None:
        co = [y.new_zeros(ni, nj)] * len(COARSE)
    else:
        pc = F.pad(coarse[None, None], (1, 1, 1, 1))[0, 0]
        co = [pc[1 + dr:1 + dr + ni, 1 + dc:1 + dc + nj] for dr, dc in COARSE]
    ones = [] if compact else [y.new_full((ni, nj), float(i == phase)) for i in range(len(PHASES))]
    ones += [] if compact else [y.new_full((ni, nj), float(k == level)) for k in range(levels)]
    return torch.stack(same + co + ones).reshape(len(same) + len(co) + len(ones), -1).t()

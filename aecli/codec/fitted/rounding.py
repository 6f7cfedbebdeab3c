"""Choosing each latent's integer once the fit is done (rate-distortion optimised rounding).

The fit leaves real-valued latents y; rounding each to its nearest integer is where this search
starts.  A latent may then move to the other integer next to y, or one step towards 0, wherever
that lowers the cost the networks give (distortion + lambda x bits, the fit's loss on rounded
latents).  A move changes little around it: the pixels its plane reaches through the synthesis
and the bits of the latents whose context holds it.  So the latents of a plane are tried in groups
spaced far enough apart that no two reach the same pixel or the same latent's bits (`SPACING`):
one evaluation of the whole image gives every move of a group its own exact change of cost, and
each move that lowers it is kept.  A plane's moves are checked by evaluating the whole cost again,
and undone together if it did not fall.

What reaches what (k is the plane, finest 0; its cells are 2**k pixels wide):
* the synthesis reads the finest plane through each pixel's 3x3 neighbourhood (structure version
  4) or its own value, and the coarser planes through bicubic upsampling, 4 taps: a latent reaches
  the pixels within 1 cell of it (finest plane) or within 2 cells (coarser planes);
* a latent's bits depend on its 3x3 neighbours in its plane and on the 3x3 around its parent in the
  coarser plane: a latent reaches the bits of the latents within 1 of it, and of the finer plane's
  latents whose parent is within 1 of it.
A group's latents are SPACING[k] apart in rows and columns; each owns the SPACING x SPACING cells
around it (the pixels and finer latents of those cells), and the change of cost in those cells is
its move's.

Measured in docs/fitted.md, "Choosing the latents' integers".
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from . import context, laplace
from .nets import Arm, Synthesis

MOVES = ("other", "zero")  # to the other integer next to y; one step towards 0


def spacing(level: int) -> int:
    """How far apart (rows and columns) the latents of one group of plane `level` are."""
    return 3 if level == 0 else 5


def bit_map(arm: Arm, planes: list[torch.Tensor], level: int) -> torch.Tensor:
    """The bits of every latent of plane `level` under the ARM, as a plane (h, w)."""
    y = planes[level]
    coarse = planes[level + 1] if level + 1 < len(planes) else None
    h, w = y.shape
    out = torch.empty_like(y)
    for p in range(len(context.PHASES)):
        a, b, ni, nj = context.phase_positions(h, w, p)
        if ni * nj == 0:
            continue
        f = context.phase_features(y, coarse, p, level, len(planes), compact=True)
        out[a::2, b::2] = laplace.bits(context.phase_values(y, p).reshape(-1), *arm(f, p, level)).reshape(ni, nj)
    return out


def error_map(synth: Synthesis, planes: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The squared error of each pixel (summed over the colours) of the synthesis on 0..1 against x."""
    return (synth(planes, tuple(x.shape[1:]))[0].clamp(0, 1) - x).pow(2).sum(0)


def _layout(n: int, cell: int, step: int, first: int) -> tuple[int, int, int]:
    """Tiles along one axis of a map of n values, `cell` values to a cell of the plane, tiles of
    `step` cells centred on the cells first, first + step, ...: (values of padding before the
    map, values of padding after it, tiles).  Tile 0 holds the cells before the first member's."""
    start = first - step // 2 - step  # the first cell of tile 0 (< 0)
    tiles = -(-(-(-n // cell) - start) // step)
    before = -start * cell
    return before, tiles * step * cell - n - before, tiles


def _tile_sums(m: torch.Tensor, cell: int, step: int, a: int, b: int) -> torch.Tensor:
    """The sums of map m over the tiles of group (a, b) (_layout), (tile rows, tile columns)."""
    top, bottom, rows = _layout(m.shape[0], cell, step, a)
    left, right, cols = _layout(m.shape[1], cell, step, b)
    p = F.pad(m.double(), (left, right, top, bottom))
    return p.reshape(rows, step * cell, cols, step * cell).sum((1, 3))


def _expand(tile_mask: torch.Tensor, shape: tuple[int, int], cell: int, step: int, a: int, b: int) -> torch.Tensor:
    """A per-tile mask of group (a, b) as a mask over a map of `shape` (values `cell` to a cell)."""
    top = _layout(shape[0], cell, step, a)[0]
    left = _layout(shape[1], cell, step, b)[0]
    big = tile_mask.repeat_interleave(step * cell, 0).repeat_interleave(step * cell, 1)
    return big[top:top + shape[0], left:left + shape[1]]


@torch.no_grad()
def improve(arm: Arm, synth: Synthesis, x: torch.Tensor, latents: list[torch.Tensor], planes: list[torch.Tensor],
            lam: float, levels: list[int] | None = None, sweeps: int = 2, deadline: float | None = None) -> int:
    """Move latents of `planes` (integers, finest first; changed in place) away from round(latents)
    wherever that lowers distortion + lam * bits per pixel (the fit's cost, its synthesis clamped to
    0..1 as the decoder's pixels are; x on 0..1, (C, H, W));
    the planes `levels` (all by default), `sweeps` times over every move, the finest plane first
    (it gains the most).  No group is begun after `deadline` (time.monotonic()).  Returns how many
    latents moved."""
    c, h, w = x.shape
    pixels = h * w
    levels = list(range(len(planes))) if levels is None else levels
    moved = 0
    for _ in range(sweeps):
        for move in MOVES:
            for k in levels:
                moved += _plane(arm, synth, x, latents[k], planes, k, move, lam / pixels, 1.0 / (c * pixels), deadline)
    return moved


def _cost(maps: list[torch.Tensor], wr: float, wd: float) -> float:
    """The part of the cost that _maps' maps hold."""
    return sum(weight * float(m.sum(dtype=torch.float64)) for weight, m in zip((wd, wr, wr), maps))


def _plane(arm, synth, x, y, planes, k, move, wr, wd, deadline) -> int:
    """One sweep of `move` over plane k: every group in turn; the plane's moves undone together if
    the cost (what they reach: the pixels, plane k's bits and the finer plane's) did not fall."""
    if deadline is not None and time.monotonic() > deadline:
        return 0
    before = planes[k].clone()
    step = spacing(k)
    maps = _maps(arm, synth, x, planes, k)
    start = _cost(maps, wr, wd)
    moved = 0
    for a in range(step):
        for b in range(step):
            if deadline is not None and time.monotonic() > deadline:
                break
            q = planes[k]
            alt = q + torch.sign(y - q) if move == "other" else q - torch.sign(q)
            mask = torch.zeros_like(q, dtype=torch.bool)
            mask[a::step, b::step] = True
            mask &= alt != q
            if not mask.any():
                continue
            planes[k] = torch.where(mask, alt, q)
            gain, moved_maps = group_gains(arm, synth, x, planes, k, a, b, maps, wr, wd)
            keep = torch.zeros_like(mask)
            keep[a::step, b::step] = gain < 0
            keep &= mask
            moved += int(keep.sum())
            planes[k] = torch.where(keep, alt, q)
            # the kept moves' changes, tile by tile (their reaches do not overlap)
            tiles = torch.zeros(_layout(q.shape[0], 1, step, a)[2], _layout(q.shape[1], 1, step, b)[2], dtype=torch.bool)
            tiles[1:1 + gain.shape[0], 1:1 + gain.shape[1]] = keep[a::step, b::step]
            maps = [torch.where(_expand(tiles, m0.shape, cell, step, a, b), m1, m0)
                    for cell, m0, m1 in zip(_cells(k), maps, moved_maps)]
    if moved and _cost(_maps(arm, synth, x, planes, k), wr, wd) >= start:
        planes[k] = before
        return 0
    return moved


def _maps(arm, synth, x, planes, k) -> list[torch.Tensor]:
    """What a move in plane k can change: the pixels' errors, plane k's bits and the finer plane's."""
    return [error_map(synth, planes, x)] + [bit_map(arm, planes, j) for j in (k, k - 1) if j >= 0]


def _cells(k: int) -> tuple[int, ...]:
    """How many values of each of _maps' maps lie along a cell of plane k."""
    return (1 << k, 1, 2)


def group_gains(arm, synth, x, planes, k, a, b, maps, wr, wd) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The change of cost each move of group (a, b) of plane k brings, planes[k] holding the group
    moved and `maps` (_maps) what it was before; as a grid over the group's latents (rows a, a + step,
    ..., columns likewise), and the maps with the group moved."""
    step = spacing(k)
    moved_maps = _maps(arm, synth, x, planes, k)
    gain = sum(weight * _tile_sums(m1 - m0, cell, step, a, b)
               for weight, cell, m0, m1 in zip((wd, wr, wr), _cells(k), maps, moved_maps))
    h, w = planes[k].shape
    rows, cols = len(range(a, h, step)), len(range(b, w, step))
    return gain[1:1 + rows, 1:1 + cols], moved_maps

"""Run a fully convolutional network on a large image tile by tile, without seams.

Tiles are laid on the network's low-resolution grid; each tile is computed with a halo of
extra context on every side that covers the receptive field, and only its own cells of the
result are kept, so the tiled result equals the untiled one up to float rounding while
memory stays bounded by the tile size.
"""

from __future__ import annotations

import torch

TILE = 48  # cells of the low-resolution grid per tile side (768 pixels for a stride-16 codec)
HALO = 4  # cells of context on each side (64 pixels): the synthesis's receptive field (3.75 cells)
ANALYSIS_HALO = 2  # the analysis sees 30 pixels around a latent cell: 2 cells (32 pixels) cover it
SYNTHESIS_HALO = 3  # decoded pixels identical to untiled ones with 2 and 3 cells (16-cell tiles, docs/perf.md)


def tiled(fn, x: torch.Tensor | tuple, factor: int, up: bool, tile: int | None = None, halo: int | None = None) -> torch.Tensor:
    """Apply a fully convolutional `fn` that scales the grid by `factor` (up or down) tile by tile.

    Tiles are laid on the low-resolution grid; each tile sees `halo` extra cells of context
    on every side, and only its own cells of the result are kept. `fn` may return a tuple of
    tensors on the same grid (each is assembled; so a tile's output can be made compact before
    the whole image's is allocated). `x` may be a tuple of tensors on the same grid: `fn` then
    takes the same window of each.
    """
    tile = TILE if tile is None else tile
    halo = HALO if halo is None else halo
    if isinstance(x, tuple):
        inputs = x
        x = inputs[0]
        call = lambda rows, cols: fn(*(t[..., rows, cols] for t in inputs))  # noqa: E731
    else:
        call = lambda rows, cols: fn(x[..., rows, cols])  # noqa: E731
    h, w = x.shape[-2:]
    gh, gw = (h, w) if up else (h // factor, w // factor)
    if gh <= tile + halo and gw <= tile + halo:
        return call(slice(None), slice(None))
    outs = None
    for r0 in range(0, gh, tile):
        for c0 in range(0, gw, tile):
            r1, c1 = min(r0 + tile, gh), min(c0 + tile, gw)
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, gh)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, gw)
            if up:
                res = call(slice(a0, a1), slice(b0, b1))
                part = _crop(res, slice((r0 - a0) * factor, (r1 - a0) * factor), slice((c0 - b0) * factor, (c1 - b0) * factor))
                dst = (slice(r0 * factor, r1 * factor), slice(c0 * factor, c1 * factor))
                size = (gh * factor, gw * factor)
            else:
                res = call(slice(a0 * factor, a1 * factor), slice(b0 * factor, b1 * factor))
                part = _crop(res, slice(r0 - a0, r1 - a0), slice(c0 - b0, c1 - b0))
                dst = (slice(r0, r1), slice(c0, c1))
                size = (gh, gw)
            parts = part if isinstance(res, tuple) else (part,)
            if outs is None:
                outs = tuple(torch.empty(*p.shape[:-2], *size, dtype=p.dtype) for p in parts)
            for o, p in zip(outs, parts):
                o[..., dst[0], dst[1]] = p
    return outs if isinstance(res, tuple) else outs[0]


def _crop(res, rows: slice, cols: slice):
    if isinstance(res, tuple):
        return tuple(r[..., rows, cols] for r in res)
    return res[..., rows, cols]

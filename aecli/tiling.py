"""Run a fully convolutional network on a large image tile by tile, without seams.

Tiles are laid on the network's low-resolution grid; each tile is computed with a halo of
extra context on every side that covers the receptive field, and only its own cells of the
result are kept, so the tiled result equals the untiled one up to float rounding while
memory stays bounded by the tile size.
"""

from __future__ import annotations

import torch

TILE = 48  # cells of the low-resolution grid per tile side (768 pixels for a stride-16 codec)
HALO = 4  # cells of context on each side (64 pixels)


def tiled(fn, x: torch.Tensor, factor: int, up: bool, tile: int | None = None, halo: int | None = None) -> torch.Tensor:
    """Apply a fully convolutional `fn` that scales the grid by `factor` (up or down) tile by tile.

    Tiles are laid on the low-resolution grid; each tile sees `halo` extra cells of context
    on every side, and only its own cells of the result are kept.
    """
    tile = TILE if tile is None else tile
    halo = HALO if halo is None else halo
    h, w = x.shape[-2:]
    gh, gw = (h, w) if up else (h // factor, w // factor)
    if gh <= tile + halo and gw <= tile + halo:
        return fn(x)
    out = None
    for r0 in range(0, gh, tile):
        for c0 in range(0, gw, tile):
            r1, c1 = min(r0 + tile, gh), min(c0 + tile, gw)
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, gh)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, gw)
            if up:
                res = fn(x[..., a0:a1, b0:b1])
                part = res[..., (r0 - a0) * factor : (r1 - a0) * factor, (c0 - b0) * factor : (c1 - b0) * factor]
                dst = (slice(r0 * factor, r1 * factor), slice(c0 * factor, c1 * factor))
                size = (gh * factor, gw * factor)
            else:
                res = fn(x[..., a0 * factor : a1 * factor, b0 * factor : b1 * factor])
                part = res[..., r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
                dst = (slice(r0, r1), slice(c0, c1))
                size = (gh, gw)
            if out is None:
                out = torch.empty(*res.shape[:-2], *size, dtype=res.dtype)
            out[..., dst[0], dst[1]] = part
    return out

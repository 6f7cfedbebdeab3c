"""Run a fully convolutional network on a large image tile by tile, without seams.

Tiles are laid on the network's low-resolution grid; each tile is computed with a halo of
extra context on every side that covers the receptive field, and only its own cells of the
result are kept, so the tiled result equals the untiled one up to float rounding while
memory stays bounded by the tile size.  An upsampling network can also narrow its margin
layer by layer (`shrinking`), so that its high-resolution layers compute little more than the
tile itself.
"""

from __future__ import annotations

import torch

TILE = 48  # cells of the low-resolution grid per tile side (768 pixels for a stride-16 codec)
HALO = 4  # cells of context on each side (64 pixels): the synthesis's receptive field (3.75 cells)
ANALYSIS_HALO = 2  # the analysis sees 30 pixels around a latent cell: 2 cells (32 pixels) cover it
SYNTHESIS_HALO = 3  # decoded pixels identical to untiled ones with 2 and 3 cells (16-cell tiles, docs/perf.md)


def tiled(fn, x: torch.Tensor | tuple, factor: int, up: bool, tile: int | None = None, halo: int | None = None,
          own: bool = False) -> torch.Tensor:
    """Apply a fully convolutional `fn` that scales the grid by `factor` (up or down) tile by tile.

    Tiles are laid on the low-resolution grid; each tile sees `halo` extra cells of context
    on every side, and only its own cells of the result are kept. `fn` may return a tuple of
    tensors on the same grid (each is assembled; so a tile's output can be made compact before
    the whole image's is allocated). `x` may be a tuple of tensors on the same grid: `fn` then
    takes the same window of each.  `own` (upsampling only): `fn` is also given the tile's own
    cells within its window, as (row start, row end, column start, column end), and returns the
    result of those cells alone (so it need not compute the whole window's).
    """
    tile = TILE if tile is None else tile
    halo = HALO if halo is None else halo
    if isinstance(x, tuple):
        inputs = x
        x = inputs[0]
        call = lambda rows, cols, *box: fn(*(t[..., rows, cols] for t in inputs), *box)  # noqa: E731
    else:
        call = lambda rows, cols, *box: fn(x[..., rows, cols], *box)  # noqa: E731
    h, w = x.shape[-2:]
    gh, gw = (h, w) if up else (h // factor, w // factor)
    if gh <= tile + halo and gw <= tile + halo:
        return call(slice(None), slice(None), *([(0, gh, 0, gw)] if own else []))
    outs = None
    for r0 in range(0, gh, tile):
        for c0 in range(0, gw, tile):
            r1, c1 = min(r0 + tile, gh), min(c0 + tile, gw)
            a0, a1 = max(r0 - halo, 0), min(r1 + halo, gh)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, gw)
            if up and own:
                part = res = call(slice(a0, a1), slice(b0, b1), (r0 - a0, r1 - a0, c0 - b0, c1 - b0))
                dst = (slice(r0 * factor, r1 * factor), slice(c0 * factor, c1 * factor))
                size = (gh * factor, gw * factor)
            elif up:
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


def shrinking(net, x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """An upsampling network `net` (transposed convolutions, stride-1 convolutions, pointwise
    layers) on the window `x`, computing at every layer only what the output of the window's own
    cells `box` (row start, row end, column start, column end, in x's cells) depends on.

    The window's halo is there for the first layers; each later layer works on a margin that
    shrinks to what the next one reads, so the high-resolution layers, where the work is, compute
    little more than the tile itself.  Returns the own cells' output alone."""
    layers = list(net)
    factor = 1
    for layer in layers:
        factor *= _geometry(layer)[1]
    r0, r1, c0, c1 = box
    needs = [((r0 * factor, r1 * factor), (c0 * factor, c1 * factor))]
    for layer in reversed(layers):
        needs.append(tuple(_reads(layer, lo, hi) for lo, hi in needs[-1]))
    needs.reverse()
    origin = (0, 0)
    for layer, need in zip(layers, needs):
        x, origin = _keep(x, origin, need)
        x = layer(x)
        kind, stride, _, _ = _geometry(layer)
        if kind == "deconv":
            origin = (origin[0] * stride, origin[1] * stride)
    x, origin = _keep(x, origin, needs[-1])
    if tuple(x.shape[-2:]) != ((r1 - r0) * factor, (c1 - c0) * factor):
        raise ValueError("the window does not hold what its own cells need")
    return x


def _geometry(layer) -> tuple[str, int, int, int]:
    """(kind, stride, kernel, padding) of a layer, for `shrinking`: torch layers, and the codec's
    integer layers (intnet.IntLayer: `kind` "conv" or "deconv", `weight`, `stride`, `padding`)."""
    from torch import nn

    kind = getattr(layer, "kind", None)
    if kind in ("conv", "deconv") and hasattr(layer, "weight"):
        geometry = kind, layer.stride, layer.weight.shape[-1], layer.padding
    elif isinstance(layer, (nn.ConvTranspose2d, nn.Conv2d)):
        kind = "deconv" if isinstance(layer, nn.ConvTranspose2d) else "conv"
        geometry = kind, layer.stride[0], layer.kernel_size[0], layer.padding[0]
    elif type(layer).__name__ in ("GDN", "IntIGDN", "ReLU", "LeakyReLU", "Identity"):
        return "pointwise", 1, 1, 0
    else:
        raise ValueError(f"no known reach for {type(layer).__name__}")
    if kind == "conv" and geometry[1] != 1:
        raise ValueError("only stride-1 convolutions can follow an upsampling network's margin")
    return geometry


def _reads(layer, lo: int, hi: int) -> tuple[int, int]:
    """The input positions [lo', hi') that outputs [lo, hi) of `layer` read."""
    kind, s, k, p = _geometry(layer)
    if kind == "deconv":  # output o = s * i - p + t, t in [0, k)
        return -((k - 1 - p - lo) // s), (hi - 1 + p) // s + 1
    if kind == "conv":
        return lo - p, hi - p + k - 1
    return lo, hi


def _keep(x: torch.Tensor, origin: tuple[int, int], need) -> tuple[torch.Tensor, tuple[int, int]]:
    """x (whose first row and column are at `origin`) cut down to the rows and columns `need`."""
    (r0, r1), (c0, c1) = need
    a0, b0 = max(r0 - origin[0], 0), max(c0 - origin[1], 0)
    a1, b1 = min(r1 - origin[0], x.shape[-2]), min(c1 - origin[1], x.shape[-1])
    return x[..., a0:a1, b0:b1], (origin[0] + a0, origin[1] + b0)

"""Rate control: the coding scale chosen by rate-distortion cost, and the highest quality that
fits a file-size budget.

At a quality whose levels.candidates offer more than one coding scale (the image's own size and
11/8 of it: levels.py), the encoder codes the image at each, decodes every file, and keeps the one
of the lowest cost lambda x 255^2 x MSE + bpp, lambda being the quality's own (the model's
training trade-off).  File size grows with quality, so the largest quality that fits a budget is
found by a binary search over the model's qualities; the analysis at each scale is shared among
the tries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .. import format as latformat
from ..errors import UserError
from ..metrics import mse
from ..images.image import Image
from . import levels, refine


@dataclass(frozen=True)
class Coded:
    """A compressed image: the .lat bytes, the quality and coding scale they hold, and whether they
    fit the budget asked for (True without one)."""

    data: bytes
    quality: int
    scale: int
    fits: bool = True


def compress(codec, img: Image, quality: levels.Quality, analyses: dict, effort: int = 0, bar=None,
             scale: int | None = None) -> Coded:
    """`img` coded by `codec` (api.Codec) at `quality`: at `scale` (eighths; None: the scale of the
    lowest cost, see the module's docstring).  ``analyses``: g_a outputs by scale, kept between
    calls on the same image.  ``effort`` > 0 then fits the latents of the chosen scale to the image
    (refine.py); ``bar`` is advanced per step."""
    h, w = img.pixels.shape[:2]
    options = quality.scales(w, h)
    if scale is None and len(options) > 1:
        lam = codec.model.lambdas[quality.index]
        costs = {}
        for s in options:
            data = codec.compress_at(img, quality, s, analyses, 0, None)
            err = mse(codec.decompress(latformat.unpack(data)).rgb, img.rgb)  # on 0..255
            costs[s] = (lam * err + 8 * len(data) / (w * h), data)  # lambda x 255^2 x MSE on 0..1, + bpp
        scale = min(costs, key=lambda s: costs[s][0])
        if refine.effort(effort).steps == 0:
            return Coded(costs[scale][1], quality.number, scale)
    elif scale is None:
        scale = levels.UNIT
    elif scale not in options:
        raise UserError(f"quality {quality.number} cannot be coded at scale {scale}/{levels.UNIT} for a {w}x{h} image "
                        f"(offered: {', '.join(f'{s}/{levels.UNIT}' for s in options)})")
    return Coded(codec.compress_at(img, quality, scale, analyses, effort, bar), quality.number, scale)


def compress_to_fit(codec, img: Image, max_bytes: int, effort: int = 0, bar=None, scale: int | None = None) -> Coded:
    """The highest quality of `codec` whose file fits in max_bytes (fits False: none does, and this
    is the smallest file); ``scale`` as for compress."""
    analyses: dict = {}
    qualities = [codec.quality(q) for q in codec.qualities]
    best = None
    lo, hi = 0, len(qualities) - 1
    while lo <= hi:  # file size grows with quality: binary search
        mid = (lo + hi) // 2
        coded = compress(codec, img, qualities[mid], analyses, effort, bar, scale)
        if len(coded.data) <= max_bytes:
            best, lo = coded, mid + 1
        else:
            hi = mid - 1
    if best is None:
        return dataclasses.replace(compress(codec, img, qualities[0], analyses, effort, bar, scale), fits=False)
    return best

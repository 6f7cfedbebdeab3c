"""Coding scale: the encoder may code an image larger than it is.

The latent holds at most M values per 16x16 block, so past some rate a finer quantisation buys
almost nothing (docs/results_notes.md, "Why the top levels are flat").  An image can instead be
*coded larger*: the encoder upsamples it by scale/8 (Lanczos), codes that, and the decoder scales
the decoded image back down to the file's width and height.  More latent positions per source
pixel lift the ceiling, at the cost of coding more of them.

Which images gain from it depends on the image (textured ones from mid rates on, smooth ones only
near the top), so the encoder decides per image and per quality (`candidates`, then the
lowest rate-distortion cost of the quality's own lambda, in aecli/codec/rate.py) and the file
records the scale (docs/format.md, version 2).  At quality q a scaled coding uses the gain vectors
of quality q-1: 1.9 times the latents at the next coarser quantisation lands near the rate of the
plain coding, so the two compete at about the same size.

The coded size of a W x H image at scale k/8 is ``ceil(W*k/8) x ceil(H*k/8)``: integers only, the
same on every machine.  The decoder's downscale is part of the format (docs/format.md, "Coding
scale"): a Lanczos-3 resize whose coefficients and filtering are defined bit for bit
(aecli/codec/resample.py), so the same decoded pixels give the same image on every machine.  The
encoder's upscale is Pillow's Lanczos: any upscale makes a valid file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import resample
from ..errors import UserError
from ..format import UNIT_SCALE as UNIT  # scales are in eighths: 8 = the image's own size
from ..format import coded_size  # noqa: F401  (ceil(W*k/8) x ceil(H*k/8); the format defines it)
SCALED = 11  # the larger scale the encoder tries (chosen on held-out images: docs/results/level_scales.md)
# the encoder codes images of more pixels than this at their own size only, so that huge photos
# keep their memory and time per pixel (docs/results/scale.md); 2^24 = 16.8 megapixels
MAX_SCALED_PIXELS = 1 << 24


def gain_index(quality_index: int, scale: int) -> int:
    """The gain vectors (0-based) a quality (0-based) codes with at this scale, or -1 if none."""
    return quality_index if scale == UNIT else quality_index - 1


def candidates(quality_index: int, width: int, height: int) -> list[int]:
    """The scales the encoder tries for this quality (0-based) and image size."""
    if quality_index >= 1 and width * height <= MAX_SCALED_PIXELS:
        return [UNIT, SCALED]
    return [UNIT]


@dataclass(frozen=True)
class Quality:
    """A quality level of one model, parsed once (quality()): the number that -Q takes and
    a file records, and its 0-based index (its gain vectors and lambda at the image's own size)."""

    number: int
    index: int

    def gains(self, scale: int) -> int:
        """The gain vectors it codes with at this scale (-1: none)."""
        return gain_index(self.index, scale)

    def scales(self, width: int, height: int) -> list[int]:
        """The scales the encoder tries for a width x height image at this quality."""
        return candidates(self.index, width, height)


def quality(qualities: list[int], number: int, model: str) -> Quality:
    """Quality `number` of a model offering `qualities` (UserError if it offers no such level): the
    one place where a quality becomes an index."""
    if number not in qualities:
        raise UserError(f"quality {number} is not offered by model '{model}' (choose {min(qualities)}..{max(qualities)})")
    return Quality(number, qualities.index(number))


def upscale(px: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 uint8 pixels at the coded size of `scale` (a copy; the input as it is at 8/8)."""
    from PIL import Image as PILImage

    h, w = px.shape[:2]
    if scale == UNIT:
        return px
    cw, ch = coded_size(w, h, scale)
    return np.asarray(PILImage.fromarray(np.ascontiguousarray(px)).resize((cw, ch), PILImage.LANCZOS))


def coded_image(img, scale: int):
    """The image (images.image.Image) the model codes at this scale: `img` itself at 8/8, else its
    RGB pixels upsampled (alpha is stored apart, at the image's own size)."""
    from ..images.image import Image

    if scale == UNIT:
        return img
    return Image(pixels=upscale(img.rgb, scale), alpha=None, mode="RGB", source_bits=8)


def downscale(px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Decoded HxWx3 uint8 pixels at the coded size back to width x height (the format's resize)."""
    if px.shape[1] == width and px.shape[0] == height:
        return px
    return resample.resize(px, width, height)

"""The .lat file of a codec model as compress writes it: the latent streams, then the alpha plane.

A file's streams (docs/format.md): the latent streams of its model's kind (factorized.py: 2,
hyperprior.py: 3, checkerboard.py: 4; decoding.STREAMS), then, in a file with alpha (RGBA, LA),
the alpha plane at the image's own size, deflated with zlib.  The fitted codec's files
(fitted/codec.py) end in the same alpha stream.  What decompress checks of a file before it
decodes anything, and the alpha plane's inflation, are decoding.py; the container itself (header,
stream lengths, CRC) is aecli/format.py.
"""

from __future__ import annotations

import zlib

import numpy as np

from .. import format as latformat
from ..images.image import Image
from . import levels


def pack(img: Image, model: str, fingerprint: bytes, quality: int, streams: list[bytes],
         scale: int = levels.UNIT, kind: str = "autoencoder") -> bytes:
    """The .lat bytes of `img` coded as the latent `streams` (the alpha stream added here)."""
    if img.alpha is not None:
        streams = [*streams, zlib.compress(np.ascontiguousarray(img.alpha).tobytes(), 9)]
    mode = img.mode if img.mode in latformat.MODES else ("RGBA" if img.alpha is not None else "RGB")
    h, w = img.pixels.shape[:2]
    return latformat.pack(latformat.LatFile(model=model, fingerprint=fingerprint, quality=quality, width=w, height=h,
                                            mode=mode, streams=tuple(streams), scale=scale, kind=kind))

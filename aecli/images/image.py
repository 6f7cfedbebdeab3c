"""The decoded image (:class:`Image`) and its conversion to and from Pillow and numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage


@dataclass(eq=False)
class Image:
    """A decoded image.

    pixels: uint8, HxWx3 (RGB) or HxW (L).
    alpha: uint8 HxW, or None.
    mode: 'RGB', 'L', 'RGBA' or 'LA': what the source had (after the reading policy of
        aecli/images/decode.py); the colour part is in ``pixels``.
    source_bits: 8, or 16 when the source had more than 8 bits per sample.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    mode: str
    source_bits: int = 8
    metadata: dict = field(default_factory=dict)  # 'icc', 'exif', 'xmp' -> bytes, from the source
    frames: int = 1  # frames of the source (only the first is decoded)

    @property
    def rgb(self) -> np.ndarray:
        """The colour part as HxWx3: ``pixels`` itself for RGB, grey repeated otherwise."""
        return self.pixels if self.pixels.ndim == 3 else np.repeat(self.pixels[..., None], 3, axis=2)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), like Pillow."""
        return (self.width, self.height)

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None

    def to_pil(self) -> PILImage.Image:
        return to_pil(self.pixels, self.alpha)


def as_arrays(img_or_array, alpha) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixels HxW or HxWx3, alpha HxW or None), both uint8, from an :class:`Image` or a uint8 array
    (HxW, HxWx1, HxWx3; HxWx2 / HxWx4 carry alpha) and an optional separate ``alpha``."""
    if isinstance(img_or_array, Image):
        pixels = img_or_array.pixels
        if alpha is None:
            alpha = img_or_array.alpha
    else:
        pixels = np.asarray(img_or_array)
    if pixels.dtype != np.uint8:
        raise TypeError(f"image pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        if alpha is not None:
            raise ValueError("alpha given twice (as a channel and as an argument)")
        alpha = pixels[:, :, -1]
        pixels = pixels[:, :, :-1]
        if pixels.shape[2] == 1:
            pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"expected an HxW or HxWx3 uint8 array, got shape {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(f"cannot encode an empty image (shape {pixels.shape})")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.dtype != np.uint8:
            raise TypeError(f"alpha must be uint8, got {alpha.dtype}")
        if alpha.shape != pixels.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match image {pixels.shape[:2]}")
    return pixels, alpha


def to_pil(pixels: np.ndarray, alpha: np.ndarray | None) -> PILImage.Image:
    """A Pillow image (L, LA, RGB or RGBA) of uint8 ``pixels`` and ``alpha`` (see :func:`as_arrays`)."""
    pixels, alpha = as_arrays(pixels, alpha)
    if alpha is None:
        return PILImage.fromarray(np.ascontiguousarray(pixels))
    if pixels.ndim == 2:
        return PILImage.fromarray(np.ascontiguousarray(np.stack([pixels, alpha], axis=-1)))
    return PILImage.fromarray(np.ascontiguousarray(np.concatenate([pixels, alpha[:, :, None]], axis=-1)))


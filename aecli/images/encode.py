"""Encoding images: the formats aecli writes, how it writes them, and the format of an output name.

* Output formats: png, jpeg, webp, tiff, bmp (``jpg``/``tif`` are accepted as
  aliases).  JPEG and BMP cannot store alpha (Pillow writes 32-bit BMPs but
  reads them back without alpha, as do most readers): the alpha channel is
  dropped and the colour/gray samples kept.  WebP cannot store gray: L is
  written as RGB and LA as RGBA.
* :func:`save_options`: lossless where the format allows it (PNG, TIFF and BMP always, WebP
  unless a quality is given), JPEG at quality 95 unless one is given.
* Given metadata (aecli/images/metadata.py) is written where the format holds it; metadata the
  format cannot hold is left out with a warning, and the pixels are written.
* :func:`format_from_path` picks the format from the extension; ``-`` or a
  name without an extension gives the default; a known image extension that
  we cannot write (``.gif``, ``.ppm``...) or an unknown one is a UserError.

Writing the bytes to a file, stdout or a device is aecli/atomic.py's job.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on corrupt headers

import numpy as np

from ..errors import UserError, reason
from ..paths import is_stdio
from .image import as_arrays, to_pil
from .metadata import save_metadata_options
from .walk import IMAGE_EXTS

#: Formats :func:`encode_image` can write.
WRITE_FORMATS = ("png", "jpeg", "webp", "tiff", "bmp")

_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
#: The extensions of the formats aecli writes, and their format.
WRITE_EXTS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}


def _normalize_format(fmt: str) -> str:
    f = fmt.lower().lstrip(".")
    f = _FORMAT_ALIASES.get(f, f)
    if f not in WRITE_FORMATS:
        raise UserError(f"unsupported output format '{fmt}' (supported: {', '.join(WRITE_FORMATS)})")
    return f


def save_options(fmt: str, quality: int | None = None) -> dict:
    """How an output image is written: lossless where the format allows it (PNG, TIFF and BMP
    always; WebP unless ``quality`` is given), else (JPEG) at ``quality`` or 95."""
    f = _normalize_format(fmt)
    if f == "webp":
        return {"lossless": True, "quality": 100, "method": 4} if quality is None else {"quality": quality}
    if f == "jpeg":
        return {"quality": 95 if quality is None else quality}
    return {}


def encode_image(img_or_array, fmt: str, *, alpha: np.ndarray | None = None, metadata: dict | None = None,
                 **opts) -> bytes:
    """Encode an :class:`Image` or a uint8 array (HxW, HxWx3; HxWx2 / HxWx4
    carry alpha) plus optional ``alpha`` (HxW uint8) to ``fmt``.

    ``fmt``: png, jpeg (jpg), webp, tiff (tif), bmp.  ``opts`` are passed to
    Pillow's ``save`` (e.g. ``quality=90``; :func:`save_options` gives aecli's defaults).
    ``metadata`` ({'icc', 'exif', 'xmp'}: bytes) is written where the format holds it.
    See the module docstring for what happens to alpha in formats that cannot store it.
    """
    f = _normalize_format(fmt)
    opts = {**save_metadata_options(f, metadata or {}), **opts}
    pixels, alpha = as_arrays(img_or_array, alpha)
    im = to_pil(pixels, alpha)
    mode = im.mode
    if f in ("jpeg", "bmp") and mode in ("RGBA", "LA"):
        im = im.convert("RGB" if mode == "RGBA" else "L")
    elif f == "webp":
        if mode == "LA":
            im = im.convert("RGBA")
        elif mode == "L":
            im = im.convert("RGB")
    buf = io.BytesIO()
    try:
        im.save(buf, format=f.upper(), **opts)
    except (OSError, ValueError, KeyError, TypeError, IndexError, SyntaxError, struct_error) as e:
        extra = save_metadata_options(f, metadata or {})
        if not extra:
            raise UserError(f"cannot encode image as {f}: {reason(e)}") from e
        # metadata the format cannot hold (EXIF over JPEG's 64 KB, bytes that are not EXIF): the
        # pixels are written without it, and the user is told
        print(f"aecli: warning: the {'+'.join(sorted(metadata))} metadata cannot be written into {f} "
              f"({reason(e)}); the image is written without it", file=sys.stderr, flush=True)
        return encode_image(img_or_array, fmt, alpha=alpha, **{k: v for k, v in opts.items() if k not in extra})
    return buf.getvalue()


def format_from_path(path: str | Path, default: str = "png") -> str:
    """Output format for ``path`` from its extension (``'-'`` or no
    extension: ``default``)."""
    if is_stdio(path):
        return _normalize_format(default)
    suffix = Path(path).suffix.lower()
    if not suffix:
        return _normalize_format(default)
    fmt = WRITE_EXTS.get(suffix)
    if fmt is None:
        exts = ", ".join(sorted(WRITE_EXTS))
        if suffix in IMAGE_EXTS:
            raise UserError(f"cannot write {suffix} images ({path}); use one of {exts}")
        raise UserError(f"unknown output image extension {suffix!r} ({path}); use one of {exts}")
    return fmt

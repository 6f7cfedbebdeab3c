"""Reading images: bytes from a file or stdin, decoded by one policy, within a pixel limit.

Problems caused by the user's input raise :class:`UserError` (``str(e)`` is one line, meant to be
printed without a traceback); programming errors raise ``TypeError``/``ValueError`` as usual.

Reading policy (:func:`decode_image`)
-------------------------------------
* EXIF orientation is applied (``ImageOps.exif_transpose``), so the pixels are
  upright as a viewer would show them; the orientation tag is not kept.
* Animated / multi-frame files (GIF, APNG, WebP, multi-page TIFF): only the
  first frame is used.
* Colour modes are mapped to one of ``RGB``, ``L``, ``RGBA``, ``LA``:

  ========================  ==========================================
  source                    result
  ========================  ==========================================
  RGB                       RGB
  L                         L
  RGBA, RGBa, RGBX-with-A   RGBA (alpha kept separately)
  LA, La                    LA (alpha kept separately)
  P (palette)               RGB, or RGBA if it has any transparency
  PA                        RGBA
  1 (bilevel)               L (0 / 255)
  CMYK, YCbCr, LAB, HSV     RGB (Pillow's conversion)
  I;16, I;16B/L/N           L, scaled ``round(v * 255 / 65535)``
  I (32-bit int gray)       L; negatives clip to 0; scaled as 16-bit
                            when all values fit in 0..65535, otherwise
                            as 0..2**31-1
  F (float gray)            L; values in [0, 1] are scaled by 255,
                            otherwise clipped to 0..255
  ========================  ==========================================

  A grayscale or RGB image with a ``tRNS`` single-colour transparency becomes
  LA / RGBA, so that the transparency is not silently lost.
* 16-bit RGB(A) and LA PNGs: Pillow 13 opens them already reduced to 8 bits
  per sample (keeping the high byte) as RGB / RGBA; that reduction is accepted
  as is (16-bit LA, which Pillow opens as RGBA, is turned back into LA).
  ``source_bits`` is 16 for every source with more than 8 bits per sample
  (detected from the mode or from the decoder's raw mode), else 8.
* ICC profiles are not applied; sample values are used as stored.  The ICC
  profile (when its colour space is that of the result: RGB or grey), the EXIF
  (less the orientation, which is applied) and the XMP packet are kept in
  ``Image.metadata`` ({'icc', 'exif', 'xmp'}: bytes), and ``Image.frames`` is the
  number of frames of the source.  Encoding (aecli/images/encode.py) writes given metadata
  into PNG, JPEG, WebP and TIFF (XMP: PNG, JPEG and WebP).
* Decompression bombs: images with more pixels than :func:`pixel_limit` allows
  (``$AECLI_MAX_PIXELS``, default ``1 << 26`` = 67 megapixels, never more than
  :data:`MAX_PIXELS` = ``1 << 28``) are refused, from the header alone, with
  ``UserError("X: image too large (W x H) ...")``.
  Pillow's own limit is raised to this value only while we decode, and its
  ``DecompressionBombWarning`` is treated as an error.
* Anything Pillow cannot decode (unknown format, truncated or corrupt data)
  gives ``UserError("X is not a readable image (reason)")``.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import warnings
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on corrupt headers

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from ..errors import UserError, reason
from ..paths import STDIO_NAME_IN, is_stdio
from .image import Image
from .metadata import metadata_of

#: Largest accepted image, in pixels (width * height).
MAX_PIXELS = 1 << 28

_bomb_lock = threading.Lock()


def read_bytes(src: str | Path) -> bytes:
    """Read all bytes of ``src``; ``'-'`` reads ``sys.stdin.buffer``."""
    if is_stdio(src):
        stream = sys.stdin
        if stream is None:
            raise UserError("cannot read <stdin>: no standard input")
        try:
            if stream.isatty():
                raise UserError(
                    "refusing to read image data from a terminal; pipe a file into stdin or give an input path"
                )
        except (AttributeError, ValueError):
            pass
        buf = getattr(stream, "buffer", stream)
        try:
            data = buf.read()
        except OSError as e:
            raise UserError(f"cannot read <stdin>: {reason(e)}") from e
        if isinstance(data, str):  # a text stream without .buffer
            data = data.encode("latin-1")
        if not data:
            raise UserError("<stdin> is empty")
        return data

    path = Path(src)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise UserError(f"input not found: {src}") from e
    except IsADirectoryError as e:
        raise UserError(f"{src} is a directory (expected a file)") from e
    except PermissionError as e:
        if path.is_dir():  # Windows reports directories this way
            raise UserError(f"{src} is a directory (expected a file)") from e
        raise UserError(f"cannot read {src}: permission denied") from e
    except OSError as e:
        raise UserError(f"cannot read {src}: {reason(e)}") from e
    if not data:
        raise UserError(f"{src} is empty")
    return data


def read_image(src: str | Path) -> Image:
    """Read and decode an image file (``'-'``: stdin)."""
    name = STDIO_NAME_IN if is_stdio(src) else str(src)
    return decode_image(read_bytes(src), name=name)


def decode_image(data: bytes, name: str = STDIO_NAME_IN) -> Image:
    """Decode image bytes according to the policy in the module docstring."""
    if not data:
        raise UserError(f"{name} is empty")
    im = None
    with _bomb_lock:
        old_limit = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", PILImage.DecompressionBombWarning)
                im = PILImage.open(io.BytesIO(data))
                _check_size(im.size, name)
                source_bits = _source_bits(im)
                raw_la = _raw_mode(im).startswith("LA")
                frames = int(getattr(im, "n_frames", 1) or 1)
                im.load()
                im = ImageOps.exif_transpose(im)
                out = _from_pil(im, source_bits, raw_la)
                out.metadata = metadata_of(im, out.mode)
                out.frames = frames
                return out
        except UserError:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as e:
            size = im.size if im is not None else _header_size(data)
            if size is None:
                raise UserError(f"{name}: image too large ({e})") from e
            raise UserError(f"{name}: image too large ({size[0]} x {size[1]})") from e
        except UnidentifiedImageError as e:
            raise UserError(f"{name} is not a readable image (unknown or unsupported format)") from e
        except MemoryError as e:
            raise UserError(f"{name}: image too large to decode (out of memory)") from e
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct_error) as e:
            raise UserError(f"{name} is not a readable image ({reason(e)})") from e
        finally:
            PILImage.MAX_IMAGE_PIXELS = old_limit


PIXELS_ENV = "AECLI_MAX_PIXELS"
DEFAULT_PIXEL_LIMIT = 1 << 26  # 67 megapixels: a 50-MP photo passes, a small file claiming gigapixels does not


def pixels_from_env() -> int | None:
    """$AECLI_MAX_PIXELS as a number (0: no limit of ours), or None when it is not set."""
    raw = os.environ.get(PIXELS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"{PIXELS_ENV} must be a whole number of pixels >= 0 (0: no limit), not {raw!r}")
    return value


def pixel_limit() -> int:
    """The most pixels an input image may have: $AECLI_MAX_PIXELS (0: the hard ceiling), else
    DEFAULT_PIXEL_LIMIT; never more than MAX_PIXELS."""
    value = pixels_from_env()
    if value is None:
        value = DEFAULT_PIXEL_LIMIT
    return MAX_PIXELS if value == 0 else min(value, MAX_PIXELS)


def _check_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise UserError(f"{name} is not a readable image (empty image: {w} x {h})")
    limit = pixel_limit()
    if w * h > limit:
        raise UserError(f"{name}: image too large ({w} x {h}): more than {limit} pixels "
                        f"(against decompression bombs; raise it with {PIXELS_ENV}, at most {MAX_PIXELS})")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Size from the header only, with Pillow's bomb check off (lock held)."""
    saved = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def _raw_mode(im: PILImage.Image) -> str:
    """The decoder's raw mode of the first tile ('' if unknown)."""
    try:
        tiles = im.tile
        if not tiles:
            return ""
        args = tiles[0][3]
    except Exception:
        return ""
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _source_bits(im: PILImage.Image) -> int:
    if im.mode.startswith("I") or im.mode == "F":
        return 16
    raw = _raw_mode(im)
    if ";16" in raw or ";32" in raw or raw.startswith(("I;16", "F;")):
        return 16
    return 8


def _scale16(a: np.ndarray) -> np.ndarray:
    """0..65535 → 0..255 with rounding."""
    a = np.clip(a.astype(np.int64), 0, 65535)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _high_gray_to_l(im: PILImage.Image) -> np.ndarray:
    mode = im.mode
    if mode.startswith("I;16"):
        return _scale16(np.asarray(im))
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.min() >= 0.0 and a.max() <= 1.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    # 'I' (and any other I;xx Pillow gives): 32-bit signed gray
    try:
        a = np.asarray(im).astype(np.int64)
    except Exception:
        a = np.asarray(im.convert("I")).astype(np.int64)
    a = np.clip(a, 0, None)
    if a.size == 0 or a.max() <= 65535:
        return _scale16(a)
    top = 2**31 - 1
    return ((np.clip(a, 0, top) * 255 + top // 2) // top).astype(np.uint8)


def _from_pil(im: PILImage.Image, source_bits: int, raw_la: bool) -> Image:
    mode = im.mode
    has_trns = "transparency" in im.info

    if mode == "RGB":
        if has_trns:
            return _split(im.convert("RGBA"), "RGBA", source_bits)
        return _split(im, "RGB", source_bits)
    if mode == "L":
        if has_trns:
            return _split(im.convert("LA"), "LA", source_bits)
        return _split(im, "L", source_bits)
    if mode == "RGBA":
        if raw_la:  # 16-bit LA PNG opened as RGBA by Pillow
            return _split(im.convert("LA"), "LA", source_bits)
        return _split(im, "RGBA", source_bits)
    if mode == "LA":
        return _split(im, "LA", source_bits)
    if mode == "La":
        return _split(im.convert("LA"), "LA", source_bits)
    if mode in ("RGBa", "PA"):
        return _split(im.convert("RGBA"), "RGBA", source_bits)
    if mode == "P":
        if im.has_transparency_data:
            return _split(im.convert("RGBA"), "RGBA", source_bits)
        return _split(im.convert("RGB"), "RGB", source_bits)
    if mode == "1":
        return _split(im.convert("L"), "L", source_bits)
    if mode.startswith("I") or mode == "F":
        return Image(np.ascontiguousarray(_high_gray_to_l(im)), None, "L", 16)
    # CMYK, YCbCr, LAB, HSV, RGBX, ...
    if "A" in im.getbands():
        return _split(im.convert("RGBA"), "RGBA", source_bits)
    return _split(im.convert("RGB"), "RGB", source_bits)


def _split(im: PILImage.Image, mode: str, source_bits: int) -> Image:
    a = np.asarray(im)
    if a.dtype != np.uint8:
        a = a.astype(np.uint8)
    if mode in ("RGB", "L"):
        return Image(np.ascontiguousarray(a), None, mode, source_bits)
    if mode == "RGBA":
        return Image(np.ascontiguousarray(a[:, :, :3]), np.ascontiguousarray(a[:, :, 3]), mode, source_bits)
    # LA
    return Image(np.ascontiguousarray(a[:, :, 0]), np.ascontiguousarray(a[:, :, 1]), mode, source_bits)

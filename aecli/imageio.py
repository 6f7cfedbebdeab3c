"""Image input/output for aecli: reading, decoding, encoding and safe writing.

Everything that touches the user's files or stdin/stdout goes through here, so
that the CLI gets one consistent set of policies and clear one-line errors.

Errors
------
Problems caused by the user's input or environment raise :class:`UserError`
(``str(e)`` is one line, meant to be printed without a traceback).  An
existing output that may not be overwritten raises :class:`OutputExists`, a
subclass of :class:`UserError`.  Programming errors (wrong dtype, bad shape
passed by our own code) raise ``TypeError``/``ValueError`` as usual.

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
  number of frames of the source.  :func:`encode_image` writes given metadata
  into PNG, JPEG, WebP and TIFF (XMP: PNG, JPEG and WebP).
* Decompression bombs: images with more pixels than :func:`pixel_limit` allows
  (``$AECLI_MAX_PIXELS``, default ``1 << 26`` = 67 megapixels, never more than
  :data:`MAX_PIXELS` = ``1 << 28``) are refused, from the header alone, with
  ``UserError("X: image too large (W x H) ...")``.
  Pillow's own limit is raised to this value only while we decode, and its
  ``DecompressionBombWarning`` is treated as an error.
* Anything Pillow cannot decode (unknown format, truncated or corrupt data)
  gives ``UserError("X is not a readable image (reason)")``.

Writing policy (:func:`encode_image`, :func:`write_output`)
-----------------------------------------------------------
* Output formats: png, jpeg, webp, tiff, bmp (``jpg``/``tif`` are accepted as
  aliases).  JPEG and BMP cannot store alpha (Pillow writes 32-bit BMPs but
  reads them back without alpha, as do most readers): the alpha channel is
  dropped and the colour/gray samples kept.  WebP cannot store gray: L is
  written as RGB and LA as RGBA.
* :func:`format_from_path` picks the format from the extension; ``-`` or a
  name without an extension gives the default; a known image extension that
  we cannot write (``.gif``, ``.ppm``...) or an unknown one is a UserError.
* ``write_output('-')``, ``/dev/stdout`` and ``/dev/fd/N`` (process
  substitution) write to that descriptor, every byte (partial writes are
  continued; a write that fails or makes no progress, such as ENOSPC on
  ``/dev/full``, is a UserError); binary data is never written to a terminal.
* An existing character device (``/dev/null``) or FIFO is written *into*, as
  ``cat > path`` does: no temporary file, no rename.  Block devices, sockets
  and directories are refused: only regular files are ever replaced.
* An existing regular file is replaced only with ``force`` (else
  :class:`OutputExists`); :func:`check_output` makes the same checks before
  any work is done.
* Regular files are written atomically (aecli/atomic.py): a temporary file
  (``.<name>.<random>.tmp``) in the destination's directory is written,
  flushed, fsync'ed and ``os.replace``d onto the destination.  On any failure,
  including KeyboardInterrupt, the temporary file is removed, so the
  destination is either the old file or the complete new one.  A process
  killed outright (SIGKILL, power loss) cannot remove it: the destination is
  still untouched or complete, but a stray ``.<name>.<random>.tmp`` may be left
  beside it; it is never reused and can be deleted.
* If the destination is a symlink, the file it points to is replaced (the
  link is kept).
* Permissions: a new file gets ``0o666 & ~umask``; an existing file that is
  replaced keeps its permission bits.
* The destination must not be the same file as any input (checked on the
  resolved paths and with ``os.path.samefile``, so ``./x/../x``, symlinks and
  hard links are caught), even with ``force``.  Missing parent directories
  are created.

Batches
-------
:func:`walk_images` lists image files below a directory (recursively, sorted,
extension match case-insensitive, hidden files and directories skipped,
symlinked directories not followed) and :func:`mirror_path` maps an input
file to the corresponding path below an output directory.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on corrupt headers
from typing import Callable, Iterable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .atomic import replace_atomically, write_all
from .errors import OutputExists, UserError  # noqa: F401  (re-exported)

__all__ = [
    "UserError",
    "OutputExists",
    "IMAGE_EXTS",
    "WRITE_FORMATS",
    "MAX_PIXELS",
    "Image",
    "read_bytes",
    "decode_image",
    "read_image",
    "encode_image",
    "format_from_path",
    "write_output",
    "walk_images",
    "mirror_path",
]


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm")

#: Formats :func:`encode_image` can write.
WRITE_FORMATS = ("png", "jpeg", "webp", "tiff", "bmp")

_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
_EXT_TO_FORMAT = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}

#: Largest accepted image, in pixels (width * height).
MAX_PIXELS = 1 << 28

STDIO_NAME_IN = "<stdin>"
STDIO_NAME_OUT = "<stdout>"

_bomb_lock = threading.Lock()


@dataclass(eq=False)
class Image:
    """A decoded image.

    pixels: uint8, HxWx3 (RGB) or HxW (L).
    alpha: uint8 HxW, or None.
    mode: 'RGB', 'L', 'RGBA' or 'LA': what the source had (after the policy
        in the module docstring); the colour part is in ``pixels``.
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
        return _to_pil(self.pixels, self.alpha)


# --------------------------------------------------------------------------
# reading


def _is_stdio(p: str | Path) -> bool:
    return isinstance(p, str) and p == "-"


def read_bytes(src: str | Path) -> bytes:
    """Read all bytes of ``src``; ``'-'`` reads ``sys.stdin.buffer``."""
    if _is_stdio(src):
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
            raise UserError(f"cannot read <stdin>: {error_reason(e)}") from e
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
        raise UserError(f"cannot read {src}: {error_reason(e)}") from e
    if not data:
        raise UserError(f"{src} is empty")
    return data


def read_image(src: str | Path) -> Image:
    """Read and decode an image file (``'-'``: stdin)."""
    name = STDIO_NAME_IN if _is_stdio(src) else str(src)
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
                out.metadata = _metadata_of(im, out.mode)
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
            raise UserError(f"{name} is not a readable image ({error_reason(e)})") from e
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


def _icc_space(icc: bytes) -> str:
    """The data colour space of an ICC profile ('RGB', 'GRAY', 'CMYK', ...), from its header."""
    return icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 128 else ""


def _metadata_of(im: PILImage.Image, mode: str) -> dict:
    """What an image carries beside its pixels: 'icc' (only where its colour space is the one the
    pixels end in), 'exif' (the orientation already removed by exif_transpose; left out when
    nothing else is in it) and 'xmp', as bytes."""
    out = {}
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and icc and _icc_space(icc) == ("GRAY" if mode in ("L", "LA") else "RGB"):
        out["icc"] = icc
    exif = im.info.get("exif")
    if isinstance(exif, bytes) and exif:
        try:
            tags = im.getexif()
            keep = len(tags) > 0 or bool(tags.get_ifd(0x8769))
        except Exception:  # noqa: BLE001 - unreadable EXIF is carried as it is
            keep = True
        if keep:
            out["exif"] = exif
    xmp = im.info.get("xmp", im.info.get("XML:com.adobe.xmp"))
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes) and xmp:
        out["xmp"] = xmp
    return out


def _metadata_options(fmt: str, metadata: dict) -> dict:
    """Pillow save options that write `metadata` into a file of format `fmt`."""
    opts: dict = {}
    if not metadata or fmt == "bmp":
        return opts
    if "icc" in metadata:
        opts["icc_profile"] = metadata["icc"]
    if "exif" in metadata:
        opts["exif"] = metadata["exif"]
    if "xmp" in metadata:
        if fmt == "png":
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata["xmp"].decode("utf-8", "replace"), zip=False)
            opts["pnginfo"] = info
        elif fmt in ("jpeg", "webp"):
            opts["xmp"] = metadata["xmp"]
    return opts


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


# --------------------------------------------------------------------------
# encoding


def _normalize_format(fmt: str) -> str:
    f = fmt.lower().lstrip(".")
    f = _FORMAT_ALIASES.get(f, f)
    if f not in WRITE_FORMATS:
        raise UserError(f"unsupported output format '{fmt}' (supported: {', '.join(WRITE_FORMATS)})")
    return f


def _as_arrays(img_or_array, alpha) -> tuple[np.ndarray, np.ndarray | None]:
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


def _to_pil(pixels: np.ndarray, alpha: np.ndarray | None) -> PILImage.Image:
    pixels, alpha = _as_arrays(pixels, alpha)
    if alpha is None:
        return PILImage.fromarray(np.ascontiguousarray(pixels))
    if pixels.ndim == 2:
        return PILImage.fromarray(np.ascontiguousarray(np.stack([pixels, alpha], axis=-1)))
    return PILImage.fromarray(np.ascontiguousarray(np.concatenate([pixels, alpha[:, :, None]], axis=-1)))


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
    opts = {**_metadata_options(f, metadata or {}), **opts}
    pixels, alpha = _as_arrays(img_or_array, alpha)
    im = _to_pil(pixels, alpha)
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
        extra = _metadata_options(f, metadata or {})
        if not extra:
            raise UserError(f"cannot encode image as {f}: {error_reason(e)}") from e
        # metadata the format cannot hold (EXIF over JPEG's 64 KB, bytes that are not EXIF): the
        # pixels are written without it, and the user is told
        print(f"aecli: warning: the {'+'.join(sorted(metadata))} metadata cannot be written into {f} "
              f"({error_reason(e)}); the image is written without it", file=sys.stderr, flush=True)
        return encode_image(img_or_array, fmt, alpha=alpha, **{k: v for k, v in opts.items() if k not in extra})
    return buf.getvalue()


def format_from_path(path: str | Path, default: str = "png") -> str:
    """Output format for ``path`` from its extension (``'-'`` or no
    extension: ``default``)."""
    if _is_stdio(path):
        return _normalize_format(default)
    suffix = Path(path).suffix.lower()
    if not suffix:
        return _normalize_format(default)
    fmt = _EXT_TO_FORMAT.get(suffix)
    if fmt is None:
        exts = ", ".join(sorted(_EXT_TO_FORMAT))
        if suffix in IMAGE_EXTS:
            raise UserError(f"cannot write {suffix} images ({path}); use one of {exts}")
        raise UserError(f"unknown output image extension {suffix!r} ({path}); use one of {exts}")
    return fmt


# --------------------------------------------------------------------------
# writing


def error_reason(e: BaseException) -> str:
    """What went wrong, in a few words: an OS error's text, else the first line of the message."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _same_file(dst: Path, src: str | Path) -> bool:
    if _is_stdio(src):
        return False
    src = Path(src)
    try:
        if os.path.samefile(dst, src):
            return True
    except OSError:
        pass
    try:
        return dst.resolve() == src.resolve()
    except (OSError, RuntimeError):
        return os.path.abspath(dst) == os.path.abspath(src)


def _refuse_terminal(isatty: Callable[[], bool], shown: str) -> None:
    try:
        tty = isatty()
    except (AttributeError, ValueError, OSError):
        return
    if tty:
        raise UserError(f"refusing to write binary data to a terminal ({shown}); redirect it or give an output path")


def _write_stdout(data: bytes) -> None:
    """Every byte to standard output, or a UserError (a broken pipe is left to the caller)."""
    stream = sys.stdout
    if stream is None:
        raise UserError("cannot write <stdout>: no standard output")
    _refuse_terminal(getattr(stream, "isatty", lambda: False), STDIO_NAME_OUT)
    buf = getattr(stream, "buffer", stream)
    try:
        stream.flush()  # what was printed before comes first
        fd = buf.fileno()
    except (AttributeError, ValueError, OSError):  # (io.UnsupportedOperation: an in-memory stream)
        fd = None
    try:
        if fd is None:
            _write_all_stream(buf, data)
        else:
            buf.flush()
            write_all(fd, data)  # straight to the descriptor: nothing is left in a buffer to fail at exit
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UserError(f"cannot write {STDIO_NAME_OUT}: {error_reason(e)}") from e


def _write_all_stream(buf, data: bytes) -> None:
    """Every byte through a stream's write(), which may report a partial write (or None)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = buf.write(view[done:])
        if not n or n < 0:
            raise OSError(errno.EIO, f"short write ({done} of {len(view)} bytes written)")
        done += n
    buf.flush()


_FD_PATH = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")


def _stream_fd(dst: str | Path) -> int | None:
    """The descriptor an output names: /dev/stdout (1), /dev/stderr (2), /dev/fd/N or /proc/self/fd/N
    (process substitution); None for any other path."""
    text = str(dst)
    if text in ("/dev/stdout", "/dev/stderr"):
        return 1 if text == "/dev/stdout" else 2
    m = _FD_PATH.fullmatch(text)
    return int(m.group(1)) if m else None


def _write_fd(fd: int, data: bytes, shown: str) -> None:
    """Every byte to descriptor ``fd`` (1: standard output, through sys.stdout)."""
    if fd == 1:
        _write_stdout(data)
        return
    _refuse_terminal(lambda: os.isatty(fd), shown)
    try:
        write_all(fd, data)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UserError(f"cannot write {shown}: {error_reason(e)}") from e


def _write_into(path: Path, data: bytes, shown: str) -> None:
    """Write into a character device or a FIFO as `cat > path` does: no temporary file, no rename."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(f"cannot write {shown}: {error_reason(e)}") from e
    try:
        if fd == 1:  # (only when standard output was closed)
            write_all(fd, data)
        else:
            _write_fd(fd, data, shown)
    except OSError as e:
        raise UserError(f"cannot write {shown}: {error_reason(e)}") from e
    finally:
        os.close(fd)


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def check_output(dst: str | Path, *, inputs: Iterable[str | Path] = (), force: bool = False,
                 derived: bool = False) -> str:
    """How :func:`write_output` would write ``dst``: 'stdout', 'fd' (/dev/stdout, /dev/fd/N), 'into'
    (an existing character device or FIFO, written into) or 'file' (a regular file, replaced
    atomically); raises the UserError it would raise before writing (same file as an input, a
    folder or another kind of file, an existing file without ``force``).  ``derived``: ``dst`` is
    a default name the user did not type (said so in the message)."""
    if _is_stdio(dst):
        return "stdout"
    if _stream_fd(dst) is not None:
        return "fd"
    shown = str(dst)
    path = Path(dst)
    for src in inputs:
        if _same_file(path, src):
            raise UserError(f"output {shown} is the same file as the input; refusing to overwrite it")
    try:
        mode = os.stat(path).st_mode  # through symlinks
    except OSError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return "into"
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"cannot write {shown}: it is {_kind_of(mode)}; only regular files are replaced")
    if os.path.lexists(path) and not force:
        if derived:
            raise OutputExists(f"{shown} already exists (the default output name); name another output, "
                               f"or add --force to replace it")
        raise OutputExists(f"output {shown} already exists (use --force to replace it)")
    return "file"


def write_output(
    dst: str | Path,
    data: bytes,
    *,
    inputs: Iterable[str | Path] = (),
    force: bool = False,
) -> None:
    """Write ``data`` to ``dst``: ``'-'``, /dev/stdout and /dev/fd/N are written to their descriptor,
    an existing character device or FIFO is written into, anything else is a regular file written
    atomically (a symlink's target is replaced, the link kept).

    Refuses (UserError) when ``dst`` is the same file as one of ``inputs``, a folder, a block device
    or a socket, and (:class:`OutputExists`) when it exists and ``force`` is False.  Missing parent
    directories are created.
    """
    how = check_output(dst, inputs=inputs, force=force)
    shown = str(dst)
    if how == "stdout":
        _write_stdout(data)
    elif how == "fd":
        _write_fd(_stream_fd(dst), data, shown)
    elif how == "into":
        _write_into(Path(dst), data, shown)
    else:
        _write_file(Path(dst), data, shown)


def _write_file(path: Path, data: bytes, shown: str) -> None:
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # through a symlink, keeping it
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise UserError(f"cannot write {shown}: {parent} exists and is not a directory") from e
    except OSError as e:
        raise UserError(f"cannot write {shown}: cannot create directory {parent}: {error_reason(e)}") from e
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        old_mode = None
    try:
        replace_atomically(target, lambda f: f.write(data), old_mode if old_mode is not None else 0o666 & ~_umask())
    except OSError as e:
        raise UserError(f"cannot write {shown}: {error_reason(e)}") from e


# --------------------------------------------------------------------------
# batches


def walk_images(root: Path, exts: Iterable[str] = IMAGE_EXTS) -> list[Path]:
    """Image files (or files with one of ``exts``) below ``root`` (recursive, sorted by path components,
    extensions matched case-insensitively, hidden files/directories skipped,
    symlinked directories not followed)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"input not found: {root}")
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    found: list[Path] = []

    def onerror(e: OSError) -> None:
        raise UserError(f"cannot read directory {e.filename}: {error_reason(e)}") from e

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for fn in filenames:
            if fn.startswith("."):
                continue
            if os.path.splitext(fn)[1].lower() in exts:
                p = base / fn
                if p.is_file():
                    found.append(p)
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found


def mirror_path(src_file: Path, src_root: Path, dst_root: Path, new_suffix: str) -> Path:
    """``dst_root / (src_file relative to src_root)`` with its suffix replaced
    by ``new_suffix`` (``'.lat'`` or ``'lat'``; ``''`` removes it)."""
    src_file, src_root, dst_root = Path(src_file), Path(src_root), Path(dst_root)
    try:
        rel = src_file.relative_to(src_root)
    except ValueError:
        rel = src_file.resolve().relative_to(src_root.resolve())
    if new_suffix and not new_suffix.startswith("."):
        new_suffix = "." + new_suffix
    if not rel.name:
        raise ValueError(f"{src_file} is the root {src_root} itself")
    return dst_root / rel.with_suffix(new_suffix)

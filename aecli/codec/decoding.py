"""What decoding a .lat file needs before any latent is touched, without torch: the checks of a
file against its model (the model's name and fingerprint, the quality and scale, the decode
limit, the number of streams) and the alpha plane.  Shared by the torch decoder (api.py) and
the numpy one (numpy_decoder.py), so that both refuse the same files with the same words."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .. import format as latformat
from ..errors import UserError
from . import levels

#: Streams of a file per codec kind (y and its escapes; plus z for the hyperprior kinds, and y in
#: two halves for the checkerboard), before the alpha plane of modes with alpha.
STREAMS = {"factorized": 2, "hyperprior": 3, "checkerboard": 4}
ALPHA_MODES = ("RGBA", "LA")  # colour modes whose files end in the alpha plane
#: Each side of the image a kind decodes is padded to a multiple of this (the model's `align`).
ALIGN = {"factorized": 16, "hyperprior": 64, "checkerboard": 64}


class DecodeError(UserError):
    pass


class PixelLimitError(DecodeError):
    """The file claims an image larger than the decode limit (a possible decompression bomb)."""

    def __init__(self, width: int, height: int, pw: int, ph: int, limit: int):
        padded = "" if (pw, ph) == (width, height) else f", {pw}x{ph} once padded for decoding"
        super().__init__(f"image size {width}x{height}{padded} is over the decode limit of {limit} pixels; "
                         f"if you trust this file, raise it with --max-pixels (or AECLI_MAX_PIXELS), 0 for no limit")
        self.width, self.height, self.limit = width, height, limit


@dataclass(frozen=True)
class Plan:
    """A checked file: its gain index, coded size (cw x ch), padded size (pw x ph), the streams
    of its latents and its alpha plane (None without)."""

    qi: int
    cw: int
    ch: int
    pw: int
    ph: int
    streams: list
    alpha: np.ndarray | None


def sizes(lat: latformat.LatFile, align: int) -> tuple[int, int, int, int]:
    """(cw, ch, pw, ph): the size the file's image is coded at (its scale) and that size padded to
    the model's alignment, the size the decoder works on."""
    cw, ch = levels.coded_size(lat.width, lat.height, lat.scale)
    return cw, ch, cw + (-cw) % align, ch + (-ch) % align


def plan(lat: latformat.LatFile, name: str, fingerprint: bytes, qualities: list[int], kind: str, align: int,
         max_pixels: int | None) -> Plan:
    """Check `lat` against the model (name, fingerprint, its qualities, kind and alignment) and the
    decode limit `max_pixels` (None or 0: none) before anything is allocated."""
    if lat.model != name or lat.fingerprint != fingerprint:
        raise DecodeError(f"this file needs model '{lat.model}' ({lat.fingerprint.hex()}), not '{name}'")
    qi = levels.quality(qualities, lat.quality, name).gains(lat.scale)
    if qi < 0:
        raise DecodeError(f"corrupt .lat file: quality {lat.quality} has no coding at scale {lat.scale}/{levels.UNIT}")
    cw, ch, pw, ph = sizes(lat, align)
    if max_pixels and pw * ph > max_pixels:
        raise PixelLimitError(lat.width, lat.height, pw, ph, max_pixels)
    has_alpha = lat.mode in ALPHA_MODES
    streams = list(lat.streams)
    needed = STREAMS[kind] + has_alpha
    if len(streams) < needed:
        raise DecodeError(f"corrupt .lat file: missing streams ({len(streams)}, but a {lat.mode} file of "
                          f"model '{name}' has {needed})")
    if len(streams) > needed:
        raise DecodeError(f"corrupt .lat file: {len(streams)} streams, but a {lat.mode} file of model "
                          f"'{name}' has {needed}")
    alpha = inflate_alpha(streams.pop(), lat.width, lat.height) if has_alpha else None
    return Plan(qi, cw, ch, pw, ph, streams, alpha)


def inflate_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """The alpha plane of a file (zlib), never inflated past the size its header implies."""
    size = width * height
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, size + 1)
    except zlib.error:
        raise DecodeError("corrupt .lat file: bad alpha stream") from None
    if len(raw) != size or not d.eof or d.unused_data:
        raise DecodeError("corrupt .lat file: alpha stream has the wrong size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width).copy()


def finish(px: np.ndarray, lat: latformat.LatFile, alpha: np.ndarray | None):
    """Decoded pixels at the coded size (cropped) -> the file's image: back to its width and
    height (the format's resize), gray modes to one channel."""
    from ..images.image import Image

    px = levels.downscale(px, lat.width, lat.height)
    if lat.mode in ("L", "LA"):
        px = np.round(px.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return Image(pixels=np.ascontiguousarray(px), alpha=alpha, mode=lat.mode, source_bits=8)


def model_for(lat: latformat.LatFile, spec: str | None = None):
    """The model files a file needs: the one given with --model (checked), else found by name and
    fingerprint among the bundled and installed ones."""
    from .. import registry

    if not spec:
        return registry.find_by_name(lat.model, lat.fingerprint, "codec")
    files = registry.resolve(spec, "codec")
    if files.name != lat.model or files.fingerprint != lat.fingerprint:
        raise UserError(f"this file needs model '{lat.model}' (fingerprint {lat.fingerprint.hex()}), "
                        f"but --model gave '{files.name}' ({files.fingerprint.hex()})")
    return files

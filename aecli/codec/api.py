"""The codec's public face: `Codec`, a loaded model that compresses images to .lat bytes and back,
and the loaded models (load_codec, codec_of, codec_for: aecli/cache.py keeps them).

    compress:   image -> coding scale (rate.py, levels.py) -> g_a (transforms.py)
                -> y (and z) coded by the model's kind (factorized.py, hyperprior.py, checkerboard.py)
                -> .lat file (latfile.py, aecli/format.py)
    decompress: .lat file checked (decoding.py) -> y_hat decoded by the model's kind
                -> g_s, float or fixed point (transforms.py) -> scaled back to the file's size

Codec holds the model (weights.py), its transforms and its latent coding, and delegates each job
to its module; the map of the package is in aecli/codec/__init__.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import cache
from .. import format as latformat
from .. import registry
from ..devices import exact_float32, pick_device
from ..errors import UserError
from ..images.image import Image
from . import coding, decoding, latfile, levels, rate, refine, weights
from .checkerboard import CheckerboardLatents
from .decoding import DecodeError, PixelLimitError
from .factorized import FactorizedLatents
from .hyperprior import HyperpriorLatents
from .model import CheckerboardCodec, HyperpriorCodec
from .transforms import Transforms, to_tensor

__all__ = ["Codec", "DecodeError", "PixelLimitError", "DEFAULT_MAX_PIXELS", "load_codec", "codec_of", "codec_for"]

#: Default decode limit, in pixels of the padded image the decoder works on (see
#: docs/format.md, "Reader policy"): 2^26, about 67 megapixels (8192 x 8192).
DEFAULT_MAX_PIXELS = latformat.DEFAULT_DECODE_PIXELS


def latent_coding_for(model: torch.nn.Module, tensors: dict, device: torch.device) -> FactorizedLatents:
    """The latent coding of the model's kind, its tables and integer networks read from `tensors`."""
    if isinstance(model, CheckerboardCodec):
        return CheckerboardLatents(model, tensors, device)
    if isinstance(model, HyperpriorCodec):
        return HyperpriorLatents(model, tensors, device)
    return FactorizedLatents(model, tensors, device)


@dataclass
class Codec:
    """A loaded codec model, ready to compress and decompress."""

    files: registry.ModelFiles
    model: torch.nn.Module
    tensors: dict
    device: torch.device = torch.device("cpu")
    latent_coding: FactorizedLatents = field(init=False, repr=False)  # where y (and z) are coded
    transforms: Transforms = field(init=False, repr=False)

    @classmethod
    def load(cls, files: registry.ModelFiles, device: str | torch.device = "cpu") -> "Codec":
        """The model of `files`, its transforms run on `device` (entropy coding always runs on the
        CPU; the integer hyper-synthesis gives the same integers on any device)."""
        model, tensors, device = weights.load(files, device)
        try:
            return cls(files, model, tensors, device)
        except (KeyError, ValueError) as exc:
            raise UserError(f"model '{files.name}': damaged or incompatible weights ({exc})") from None

    def __post_init__(self):
        self.latent_coding = latent_coding_for(self.model, self.tensors, self.device)
        self.transforms = Transforms(self.model, self.device)

    # ---- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.files.name

    @property
    def qualities(self) -> list[int]:
        return list(self.files.meta["qualities"])

    @property
    def default_quality(self) -> int:
        return int(self.files.meta.get("default_quality", self.qualities[len(self.qualities) // 2]))

    def quality(self, number: int | None = None) -> levels.Quality:
        """A quality of this model (None: its default), parsed once: its number and index."""
        return levels.quality(self.qualities, self.default_quality if number is None else number, self.name)

    def index_of(self, quality: int) -> int:
        """The index of a quality's gain vectors (and lambda) when coded at the image's own size."""
        return self.quality(quality).index

    def scales_tried(self, quality: int, width: int, height: int) -> list[int]:
        """The coding scales compress tries for a width x height image at this quality (levels.py)."""
        return self.quality(quality).scales(width, height)

    coded_image = staticmethod(levels.coded_image)

    def analyse(self, img: Image) -> torch.Tensor:
        """The quality-independent latent g_a(x): (1, M, H/16, W/16)."""
        return self.transforms.analyse(img)

    # ---- latents ---------------------------------------------------------------------
    @torch.inference_mode()
    def latents(self, y_base: torch.Tensor, qi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The scaled latent y = g_a(x) * gain[qi] (on the CPU) and, for a hyperprior model, the
        unrounded hyper-latent z = h_a(y) * hgain[qi] (on the model's device)."""
        return self.latent_coding.latents(y_base, qi)

    def refined_latents(self, img: Image, y_base: torch.Tensor, qi: int, effort: int, bar=None):
        """(y, z) fitted to this image by `effort` steps of refinement (refine.py); effort 0: the
        analysis's own."""
        y, z = self.latents(y_base, qi)
        level = refine.effort(effort)
        if level.steps == 0:
            return y, z
        x, h, w = to_tensor(img, self.model.align)
        with exact_float32(self.device):
            y, z = refine.refine(self.model, x, (h, w), y.to(self.device), z, qi, level, bar=bar)
        return y.cpu(), z

    @torch.inference_mode()
    def encode_latents(self, y: torch.Tensor, z: torch.Tensor | None, qi: int) -> list[bytes]:
        """The entropy-coded streams of scaled latents y (and hyper-latents z, rounded there)."""
        y = y.cpu()
        if not bool(torch.isfinite(y).all()) or (z is not None and not bool(torch.isfinite(z).all())):
            raise UserError(f"model '{self.name}' computed non-finite latents for this image (damaged weights?)")
        return self.latent_coding.encode(y, z, qi)

    @torch.inference_mode()
    def decode_streams(self, streams: list[bytes], qi: int, lh: int, lw: int) -> torch.Tensor:
        """y_hat (1, M, lh, lw) from a file's latent streams."""
        if len(streams) < self.latent_coding.streams:
            raise DecodeError("corrupt .lat file: missing streams")
        return self.latent_coding.decode(streams, qi, lh, lw)

    def streams_needed(self, mode: str) -> int:
        """How many streams a file in this colour mode holds: y and escapes (plus z for a
        hyperprior model, and y in two halves for a checkerboard one), plus the alpha plane for
        modes with alpha."""
        return self.latent_coding.streams + (mode in decoding.ALPHA_MODES)

    # ---- whole images ---------------------------------------------------------------------
    def compress(self, img: Image, quality: int | None = None, analyses: dict | None = None,
                 effort: int = 0, bar=None, scale: int | None = None) -> bytes:
        """The .lat bytes of `img` (rate.compress, with the quality given as a number; None: the
        model's default).

        ``scale``: code the image at scale/8 of its size (levels.py); None: each scale of
        ``levels.candidates`` is tried and the file with the lowest cost lambda x 255^2 x MSE + bpp
        (lambda of the quality) is kept.  ``analyses``: a dict kept between calls on the same
        image (scale -> g_a output), so that several qualities analyse it once per scale.
        ``effort`` > 0 then fits the latents of the chosen scale to the image (smaller files at
        equal quality, much slower encoding: refine.py); ``bar`` is advanced per step."""
        analyses = {} if analyses is None else analyses
        return rate.compress(self, img, self.quality(quality), analyses, effort, bar, scale).data

    def compress_at(self, img: Image, quality: levels.Quality, scale: int, analyses: dict, effort: int, bar) -> bytes:
        """The .lat bytes of `img` coded at this quality and scale (its analysis kept in `analyses`)."""
        qi = quality.gains(scale)
        coded = None
        if scale not in analyses or effort:
            coded = self.coded_image(img, scale)
        if scale not in analyses:
            analyses[scale] = self.analyse(coded)
        streams = self.encode_latents(*self.refined_latents(coded, analyses[scale], qi, effort, bar), qi)
        return latfile.pack(img, self.name, self.files.fingerprint, quality.number, streams, scale)

    def compress_to_fit(self, img: Image, max_bytes: int, effort: int = 0, bar=None,
                        scale: int | None = None) -> tuple[bytes, int, bool]:
        """The highest quality whose file fits in max_bytes: (data, quality, fits); ``scale`` as
        for compress (rate.compress_to_fit)."""
        coded = rate.compress_to_fit(self, img, max_bytes, effort, bar, scale)
        return coded.data, coded.quality, coded.fits

    def decompress(self, lat: latformat.LatFile, max_pixels: int | None = None, exact: bool = False) -> Image:
        """The image of ``lat``.  ``max_pixels``: refuse (before any allocation) a file whose
        padded image, each side rounded up to the model's alignment, has more pixels; None or 0:
        no limit beyond the format's.  ``exact``: the fixed-point synthesis, whose pixels are the
        same on every machine and device (slower)."""
        p = decoding.plan(lat, self.name, self.files.fingerprint, self.qualities, self.latent_coding.kind,
                          self.model.align, max_pixels)
        try:
            y_hat = self.decode_streams(p.streams, p.qi, p.ph // 16, p.pw // 16)
        except coding.CodingError as exc:
            raise DecodeError(f"corrupt .lat file: {exc}") from None
        synthesis = self.transforms.synthesise_exact if exact else self.transforms.synthesise
        x = synthesis(y_hat, p.qi)[0, :, :p.ch, :p.cw]
        return decoding.finish(x.permute(1, 2, 0).numpy(), lat, p.alpha)


def _cached(files: registry.ModelFiles, device: str = "cpu") -> Codec:
    return cache.loaded(Codec, files, pick_device(device))


def codec_of(files: registry.ModelFiles, device: str = "cpu") -> Codec:
    """The loaded codec of model files (loaded once per process and device)."""
    return _cached(files, device)


def load_codec(spec: str | None = None, device: str = "cpu") -> Codec:
    return _cached(registry.resolve(spec, "codec"), device)


def codec_for(lat: latformat.LatFile, spec: str | None = None, device: str = "cpu") -> Codec:
    """The model a file needs: the one given with --model (checked), else found by name."""
    return _cached(decoding.model_for(lat, spec), device)

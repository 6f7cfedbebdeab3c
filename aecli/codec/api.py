"""compress(image) -> .lat bytes and decompress(.lat bytes) -> image.

Pipeline (hyperprior model; the factorized model skips the z part):

    x (uint8) -> upsampled by the coding scale (levels.py) -> pad to a multiple of 64
      -> g_a (tiled) -> y * gain[q]
    z = round(h_a(y) * hgain[q])                       -> stream 0, per-channel tables
    integer h_s(z * inv_hgain[q]) -> table index, mean  (exact on every machine)
    round(y - mean)                                     -> stream 1, Gaussian tables
    escaped values                                      -> stream 2
    alpha plane, zlib                                   -> stream 3 (modes with alpha)
    decoder: y_hat = symbols + mean -> g_s (tiled) on y_hat * inv_gain[q] -> crop -> downsampled

Large images are processed in tiles of the latent grid with a halo of latents around each
tile that covers the transforms' receptive field, so tiles join without seams and memory
stays bounded by the tile size (plus the small latent tensors).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .. import cache
from .. import format as latformat
from .. import registry
from .. import tiling
from ..devices import exact_float32, pick_device
from ..metrics import mse
from ..errors import UserError
from ..images.image import Image
from ..tiling import shrinking, tiled
from . import checks, coding, decoding, intnet, levels, refine
from .decoding import DecodeError, PixelLimitError  # noqa: F401  (part of this module's interface)
from .model import Z_LIMIT, CheckerboardCodec, HyperpriorCodec, anchors, build

# memory layouts of the transforms: channels-last, which oneDNN convolves faster on x86 CPUs
# (measured against plain NCHW in docs/results/perf_layout.md)
ANALYSIS_LAYOUT = torch.channels_last
SYNTHESIS_LAYOUT = torch.channels_last
HYPER_TILE = 24  # hyper-latent cells per tile side of the integer hyper-synthesis (the fastest per
# cell on a 50-megapixel image: 7.6 s at 24 against 9.5 s at 32, docs/perf.md); its float64 column
# buffers are bounded per call by intnet.COLUMN_BYTES
HYPER_HALO = 2  # its receptive field: a latent in hyper cell c depends on cells c - 1 .. c + 2, so
# that every integer is that of one piece
CONTEXT_TILE = 64  # latents per tile side of the checkerboard context pass (halo 2: its 5x5 reach)



#: Default decode limit, in pixels of the padded image the decoder works on (see
#: docs/format.md, "Reader policy"): 2^26, about 67 megapixels (8192 x 8192).
DEFAULT_MAX_PIXELS = latformat.DEFAULT_DECODE_PIXELS


@dataclass
class Codec:
    """A loaded codec model, ready to compress and decompress."""

    files: registry.ModelFiles
    model: torch.nn.Module
    tensors: dict
    device: torch.device = torch.device("cpu")

    @classmethod
    def load(cls, files: registry.ModelFiles, device: str | torch.device = "cpu") -> "Codec":
        """The model of `files`, its transforms run on `device` (entropy coding always runs on the
        CPU; the integer hyper-synthesis gives the same integers on any device)."""
        arch = checks.check_files(files)  # bounded and consistent before anything is built or read
        tensors = registry.load_tensors(files)
        model = build(arch)
        if not files.bundled:  # (bundled weights are checked by their fingerprint, in load_tensors)
            checks.check_tensors(files, tensors, model)
        state = {k: v for k, v in tensors.items() if not k.startswith(("tables.", "int."))}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"model '{files.name}': weights do not match its architecture ({str(exc).splitlines()[0]})") from None
        device = torch.device(device)
        model.eval().to(device)
        model.g_a.to(memory_format=ANALYSIS_LAYOUT)
        model.g_s.to(memory_format=SYNTHESIS_LAYOUT)
        try:
            return cls(files, model, tensors, device)
        except (KeyError, ValueError) as exc:
            raise UserError(f"model '{files.name}': damaged or incompatible weights ({exc})") from None

    def __post_init__(self):
        t = self.tensors
        self.y_pmfs = coding.unpack_tables(t["tables.y.pmf"].numpy(), t["tables.y.len"].numpy())
        self.y_offsets = t["tables.y.offset"].numpy()
        self.hyper = isinstance(self.model, HyperpriorCodec)
        if self.hyper:
            self.z_pmfs = coding.unpack_tables(t["tables.z.pmf"].numpy(), t["tables.z.len"].numpy())
            self.z_offsets = t["tables.z.offset"].numpy()
            self.thresholds = t["tables.y.thresholds"].to(self.device, torch.float64)
            self.inv_hgain = t["int.inv_hgain"].to(self.device, torch.float64)
            self.h_s = intnet.load(_prefixed(t, "int.h_s."), self.model.h_s, self.device)
        self.checkerboard = isinstance(self.model, CheckerboardCodec)
        if self.checkerboard:
            self.ctx = intnet.load(_prefixed(t, "int.ctx."), torch.nn.Sequential(self.model.ctx), self.device)
            self.ep = intnet.load(_prefixed(t, "int.ep."), self.model.ep, self.device)

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

    def index_of(self, quality: int) -> int:
        """The index of a quality's gain vectors (and lambda) when coded at the image's own size."""
        if quality not in self.qualities:
            lo, hi = min(self.qualities), max(self.qualities)
            raise UserError(f"quality {quality} is not offered by model '{self.name}' (choose {lo}..{hi})")
        return self.qualities.index(quality)

    def scales_tried(self, quality: int, width: int, height: int) -> list[int]:
        """The coding scales compress tries for a width x height image at this quality (levels.py)."""
        return levels.candidates(self.index_of(quality), width, height)

    @staticmethod
    def coded_image(img: Image, scale: int) -> Image:
        """The image the model codes at this scale: `img` itself at 8/8, else its RGB pixels
        upsampled (levels.py; alpha is stored apart, at the image's own size)."""
        if scale == levels.UNIT:
            return img
        return Image(pixels=levels.upscale(img.rgb, scale), alpha=None, mode="RGB", source_bits=8)

    # ---- analysis / synthesis ----------------------------------------------------------
    def _to_tensor(self, img: Image) -> tuple[torch.Tensor, int, int]:
        px = img.rgb
        h, w = px.shape[:2]
        a = self.model.align
        ph, pw = (-h) % a, (-w) % a
        if ph or pw or not px.flags.writeable:
            px = np.pad(px, ((0, ph), (0, pw), (0, 0)), mode="edge")  # a copy
        # (1, 3, H, W) as a view of the HxWx3 pixels: channels-last memory, one copy of the image at most
        return torch.from_numpy(px).permute(2, 0, 1)[None], h, w

    @torch.inference_mode()
    def analyse(self, img: Image) -> torch.Tensor:
        """The quality-independent latent g_a(x): (1, M, H/16, W/16)."""
        x, _, _ = self._to_tensor(img)
        dev = self.device

        def run(t):
            t = t.to(dev).float().div_(255.0).contiguous(memory_format=ANALYSIS_LAYOUT)
            return self.model.g_a(t).contiguous().cpu()

        with exact_float32(dev):
            return tiled(run, x, 16, up=False, halo=tiling.ANALYSIS_HALO)

    @torch.inference_mode()
    def synthesise(self, y_hat: torch.Tensor, qi: int) -> torch.Tensor:
        """uint8 image (1, 3, H, W) from the scaled latent."""
        ig = torch.exp(self.model.inv_gain[qi]).view(1, -1, 1, 1)

        def run(t, box):
            t = (t.to(self.device) * ig).contiguous(memory_format=SYNTHESIS_LAYOUT)
            return shrinking(self.model.g_s, t, box).clamp_(0, 1).mul_(255).round_().to(torch.uint8).contiguous().cpu()

        with exact_float32(self.device):
            return tiled(run, y_hat, 16, up=True, halo=tiling.SYNTHESIS_HALO, own=True)

    @cached_property
    def _fixed_point_synthesis(self) -> tuple[list, torch.Tensor]:
        """The integer synthesis layers and the per-level input gains as integers at 2**-ACT_BITS
        (math.exp, then an exact rounding), built on first use."""
        gains = self.model.inv_gain.detach().double().cpu().tolist()
        ints = [[math.floor(math.exp(v) * 2.0**intnet.ACT_BITS + 0.5) for v in row] for row in gains]
        return intnet.synthesis(self.model.g_s, self.device), torch.tensor(ints, dtype=torch.float64, device=self.device)

    @torch.inference_mode()
    def synthesise_exact(self, y_hat: torch.Tensor, qi: int) -> torch.Tensor:
        """uint8 image (1, 3, H, W) from the fixed-point synthesis (intnet.synthesis): every value
        is an integer computed exactly, so the pixels are the same on every machine and device.
        Tiles take the full receptive field as halo (tiling.HALO) and narrow it layer by layer
        (tiling.shrinking), so tiling changes nothing."""
        net, gains = self._fixed_point_synthesis
        ig = gains[qi].view(1, -1, 1, 1)
        unit = 2.0**intnet.ACT_BITS

        def run(t, box):
            a = t.to(self.device, torch.float64).mul_(unit).add_(0.5).floor_()  # y_hat: integer + 12-bit mean
            a = a.mul_(ig).mul_(1.0 / unit).add_(0.5).floor_().clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)
            a = shrinking(net, a, box)
            return a.mul_(255.0 / unit).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).cpu()

        return tiled(run, y_hat, 16, up=True, halo=tiling.HALO, own=True)

    def _tables_and_means(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer (scales, means) at 2**-ACT_BITS -> table indexes (uint8 where they fit) and means
        (float32: an integer below 2**22 times 2**-12 is exact), on the CPU."""
        scales, means = params.chunk(2, dim=1)
        top = len(self.y_pmfs) - 1
        idx = torch.searchsorted(self.thresholds, scales.contiguous(), right=False).clamp_(0, top)
        return idx.to(torch.uint8 if top < 256 else torch.int32).cpu(), (means * 2.0**-intnet.ACT_BITS).to(torch.float32).cpu()

    def _hyper_params(self, z_sym: torch.Tensor, qi: int) -> tuple[np.ndarray, torch.Tensor]:
        """Exact table indexes (uint8) and means (float32) of y from the integer hyper-synthesis,
        made compact tile by tile (the float64 output of a whole large image is never held)."""
        idx, means = tiled(lambda t, box: self._tables_and_means(intnet.run(self.h_s, t.to(self.device), box)),
                           self._hyper_input(z_sym, qi), 4, up=True, tile=HYPER_TILE, halo=HYPER_HALO, own=True)
        return idx.numpy(), means

    def _hyper_ints(self, z_sym: torch.Tensor, qi: int) -> torch.Tensor:
        """The integer hyper-synthesis output (1, 2M, H/16, W/16) as float32, which holds its
        integers (below 2**22) exactly: the checkerboard model's input."""
        return tiled(lambda t, box: intnet.run(self.h_s, t.to(self.device), box).to(torch.float32).cpu(),
                     self._hyper_input(z_sym, qi), 4, up=True, tile=HYPER_TILE, halo=HYPER_HALO, own=True)

    def _hyper_input(self, z_sym: torch.Tensor, qi: int) -> torch.Tensor:
        """The integer hyper-synthesis's input: the hyper-latent symbols times the level's integer gains."""
        return z_sym.to(torch.float64) * self.inv_hgain[qi].view(1, -1, 1, 1).cpu()

    def _checkerboard_params(self, hyper: torch.Tensor, y_anchor: torch.Tensor | None,
                             half: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Table indexes and means of the latents at `half` (a boolean latent-grid mask; zeros
        elsewhere) from the integer context model: the hyper-synthesis output `hyper` plus a
        correction computed from it and from the decoded anchors `y_anchor` (integers at
        2**-ACT_BITS, zero off the anchors; None: the anchors' own pass, zero context).

        The correction network is 1x1 convolutions, so it runs on the chosen positions alone; the
        5x5 context convolution runs there too, reading only the taps that can hold an anchor
        ((row + column) offset odd: 12 of 25).  Tiled with a halo of 2 latents, the context's
        reach, so every integer is that of one piece."""
        m2 = hyper.shape[1]
        taps = [(i, j) for i in range(5) for j in range(5) if (i + j) % 2]

        def run(hyper_t, mask_t, anchor_t=None):
            hh, ww = hyper_t.shape[-2:]
            pos = mask_t.flatten().nonzero().squeeze(1)
            h = hyper_t.flatten(2)[0][:, pos].to(self.device, torch.float64)  # (2M, K)
            if anchor_t is None:
                context = torch.zeros_like(h)
            else:
                context = self.ctx[0].at(anchor_t.to(self.device, torch.float64), pos.to(self.device), taps)[0]
            out = intnet.run_pointwise(self.ep, torch.cat([h, context]))
            idx_k, means_k = self._tables_and_means(out.add_(h).clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)[None])
            idx = torch.zeros(1, m2 // 2, hh * ww, dtype=idx_k.dtype)
            means = torch.zeros(1, m2 // 2, hh * ww, dtype=torch.float32)
            idx[:, :, pos], means[:, :, pos] = idx_k, means_k
            return idx.view(1, -1, hh, ww), means.view(1, -1, hh, ww)

        mask = torch.from_numpy(np.ascontiguousarray(half)).view(1, 1, *half.shape)
        x = (hyper, mask) if y_anchor is None else (hyper, mask, y_anchor)
        idx, means = tiled(run, x, 1, up=True, tile=CONTEXT_TILE, halo=2)
        return idx.numpy(), means

    # ---- coding --------------------------------------------------------------------------
    @torch.inference_mode()
    def latents(self, y_base: torch.Tensor, qi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The scaled latent y = g_a(x) * gain[qi] (on the CPU) and, for a hyperprior model, the
        unrounded hyper-latent z = h_a(y) * hgain[qi] (on the model's device)."""
        y = y_base * torch.exp(self.model.gain[qi]).cpu().view(1, -1, 1, 1)
        if not self.hyper:
            return y, None
        hg = torch.exp(self.model.hgain[qi]).view(1, -1, 1, 1)
        with exact_float32(self.device):
            return y, self.model.h_a(y.to(self.device)) * hg

    def encode_streams(self, y_base: torch.Tensor, qi: int) -> list[bytes]:
        return self.encode_latents(*self.latents(y_base, qi), qi)

    @torch.inference_mode()
    def encode_latents(self, y: torch.Tensor, z: torch.Tensor | None, qi: int) -> list[bytes]:
        """The entropy-coded streams of scaled latents y (and hyper-latents z, rounded here)."""
        y = y.cpu()
        if not bool(torch.isfinite(y).all()) or (z is not None and not bool(torch.isfinite(z).all())):
            raise UserError(f"model '{self.name}' computed non-finite latents for this image (damaged weights?)")
        if not self.hyper:
            sym = torch.round(y).clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
            idx = np.broadcast_to(np.arange(y.shape[1], dtype=np.int32).reshape(1, -1, 1, 1), sym.shape)
            y_bytes, esc = coding.encode(sym, idx, self.y_pmfs, self.y_offsets)
            return [y_bytes, coding.pack_escapes(esc)]
        z = torch.round(z).clamp_(-Z_LIMIT, Z_LIMIT).cpu()
        z_sym = z.to(torch.int64)
        z_idx = np.broadcast_to(np.arange(z.shape[1], dtype=np.int32).reshape(1, -1, 1, 1), z.shape)
        z_bytes, z_esc = coding.encode(z_sym.numpy(), z_idx, self.z_pmfs, self.z_offsets)
        if self.checkerboard:
            y_bytes, y_esc = self._encode_checkerboard(y, z_sym, qi)
            return [z_bytes, *y_bytes, coding.pack_escapes(z_esc + y_esc)]
        idx, means = self._hyper_params(z_sym, qi)
        # round(y - means), computed in the means' own storage (no longer needed): one latent-sized float less
        res = means.neg_().add_(y).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT)
        del means
        sym = res.to(torch.int32).numpy()
        del res
        y_bytes, y_esc = coding.encode(sym, idx, self.y_pmfs, self.y_offsets)
        return [z_bytes, y_bytes, coding.pack_escapes(z_esc + y_esc)]

    def _encode_checkerboard(self, y: torch.Tensor, z_sym: torch.Tensor, qi: int) -> tuple[list[bytes], list[int]]:
        """The two streams of a checkerboard model's latents (anchors, then the rest) and their
        escaped values, in coding order.  Both halves' symbols and table indexes are found (and
        kept as compact vectors) before any entropy coding, so that the hyper-synthesis output
        and the decoded anchors are dropped first; every latent-sized array goes as soon as it
        is used (a 50-megapixel image has 100 MB per float32 copy of its latents)."""
        hyper = self._hyper_ints(z_sym, qi)
        first = anchors(*y.shape[-2:])[0, 0].bool().numpy()
        idx, means = self._checkerboard_params(hyper, None, first)
        sym = torch.sub(y, means).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
        y_anchor = self._anchor_ints(sym, means, first)  # (uses up `means`)
        del means
        anchor_sym, anchor_idx = sym[..., first], idx[..., first]  # compact copies
        del sym, idx
        idx, means = self._checkerboard_params(hyper, y_anchor, ~first)
        del hyper, y_anchor
        sym = means.neg_().add_(y).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
        del means
        rest_sym, rest_idx = sym[..., ~first], idx[..., ~first]
        del sym, idx
        anchor_bytes, escapes = coding.encode(anchor_sym, anchor_idx, self.y_pmfs, self.y_offsets)
        del anchor_sym, anchor_idx
        rest_bytes, esc = coding.encode(rest_sym, rest_idx, self.y_pmfs, self.y_offsets)
        return [anchor_bytes, rest_bytes], escapes + esc

    @staticmethod
    def _anchor_ints(sym: np.ndarray, means: torch.Tensor, first: np.ndarray) -> torch.Tensor:
        """The decoded anchors as integers at 2**-ACT_BITS (symbol + mean, saturated), zero
        elsewhere, in float32; `means` is used up (scaled in place).  Exact: a symbol below 2**12 in
        size gives a product below 2**24 and a sum below 2**23, both exact in float32; a larger one
        gives a sum beyond the saturation limit 2**22 however it rounds, so the saturated value is
        the same."""
        unit = 2.0**intnet.ACT_BITS
        a = torch.from_numpy(sym).to(torch.float32).mul_(unit).add_(means.mul_(unit))
        a = a.clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)
        return a.mul_(torch.from_numpy(first))

    def _decode_checkerboard(self, streams: list[bytes], z_sym: torch.Tensor, qi: int, shape: tuple,
                             esc: coding.EscapeReader) -> torch.Tensor:
        """y_hat of a checkerboard file: the anchors (stream 1), then the rest given them (stream 2)."""
        hyper = self._hyper_ints(z_sym, qi)
        first = anchors(*shape[-2:])[0, 0].bool().numpy()
        idx, means = self._checkerboard_params(hyper, None, first)
        sym = np.zeros(shape, dtype=np.int32)
        sym[..., first] = coding.decode(streams[0], idx[..., first], self.y_pmfs, self.y_offsets, esc)
        del idx
        mask = torch.from_numpy(first)
        y_hat = torch.from_numpy(sym).to(torch.float32).add_(means).mul_(mask)  # the anchors, zero elsewhere
        y_anchor = self._anchor_ints(sym, means, first)  # (uses up `means`)
        del means
        idx, means = self._checkerboard_params(hyper, y_anchor, ~first)
        del hyper, y_anchor
        sym[...] = 0
        sym[..., ~first] = coding.decode(streams[1], idx[..., ~first], self.y_pmfs, self.y_offsets, esc)
        del idx
        rest = means.add_(torch.from_numpy(sym)).mul_(~mask)
        return y_hat.add_(rest)

    def refined_latents(self, img: Image, y_base: torch.Tensor, qi: int, effort: int, bar=None):
        """(y, z) fitted to this image by `effort` steps of refinement (refine.py); effort 0: the
        analysis's own."""
        y, z = self.latents(y_base, qi)
        level = refine.effort(effort)
        if level.steps == 0:
            return y, z
        x, h, w = self._to_tensor(img)
        with exact_float32(self.device):
            y, z = refine.refine(self.model, x, (h, w), y.to(self.device), z, qi, level, bar=bar)
        return y.cpu(), z

    def streams_needed(self, mode: str) -> int:
        """How many streams a file in this colour mode holds: y and escapes (plus z for a
        hyperprior model, and y in two halves for a checkerboard one), plus the alpha plane for
        modes with alpha."""
        return (4 if self.checkerboard else 3 if self.hyper else 2) + (1 if mode in ("RGBA", "LA") else 0)

    @torch.inference_mode()
    def decode_streams(self, streams: list[bytes], qi: int, lh: int, lw: int) -> torch.Tensor:
        m = self.model.m
        if not self.hyper:
            if len(streams) < 2:
                raise DecodeError("corrupt .lat file: missing streams")
            esc = coding.EscapeReader(streams[1])
            idx = np.broadcast_to(np.arange(m, dtype=np.int32).reshape(1, -1, 1, 1), (1, m, lh, lw))
            sym = coding.decode(streams[0], idx, self.y_pmfs, self.y_offsets, esc)
            esc.finish()
            return torch.from_numpy(sym).float()
        if len(streams) < (4 if self.checkerboard else 3):
            raise DecodeError("corrupt .lat file: missing streams")
        n = self.model.nh  # hyper-latent channels
        esc = coding.EscapeReader(streams[-1])  # z's escapes, then y's
        z_idx = np.broadcast_to(np.arange(n, dtype=np.int32).reshape(1, -1, 1, 1), (1, n, lh // 4, lw // 4))
        z_sym = coding.decode(streams[0], z_idx, self.z_pmfs, self.z_offsets, esc)
        z_sym = torch.from_numpy(z_sym).clamp_(-Z_LIMIT, Z_LIMIT)
        if self.checkerboard:
            y_hat = self._decode_checkerboard(streams[1:3], z_sym, qi, (1, m, lh, lw), esc)
            esc.finish()
            return y_hat
        idx, means = self._hyper_params(z_sym, qi)
        sym = coding.decode(streams[1], idx, self.y_pmfs, self.y_offsets, esc)
        esc.finish()
        return torch.from_numpy(sym).float() + means

    # ---- whole images ---------------------------------------------------------------------
    def compress(self, img: Image, quality: int | None = None, analyses: dict | None = None,
                 effort: int = 0, bar=None, scale: int | None = None) -> bytes:
        """The .lat bytes of `img`.

        ``scale``: code the image at scale/8 of its size (levels.py); None: each scale of
        ``levels.candidates`` is tried and the file with the lowest cost lambda x 255^2 x MSE + bpp
        (lambda of the quality) is kept.  ``analyses``: a dict kept between calls on the same
        image (scale -> g_a output), so that several qualities analyse it once per scale.
        ``effort`` > 0 then fits the latents of the chosen scale to the image (smaller files at
        equal quality, much slower encoding: refine.py); ``bar`` is advanced per step."""
        quality = self.default_quality if quality is None else quality
        qi = self.index_of(quality)
        h, w = img.pixels.shape[:2]
        options = self.scales_tried(quality, w, h)
        analyses = {} if analyses is None else analyses
        if scale is None and len(options) > 1:
            lam = self.model.lambdas[qi]
            costs = {}
            for s in options:
                data = self._compress_at(img, quality, s, analyses, 0, None)
                err = mse(self.decompress(latformat.unpack(data)).rgb, img.rgb)  # on 0..255
                costs[s] = (lam * err + 8 * len(data) / (w * h), data)  # lambda x 255^2 x MSE on 0..1, + bpp
            scale = min(costs, key=lambda s: costs[s][0])
            if refine.effort(effort).steps == 0:
                return costs[scale][1]
        elif scale is None:
            scale = levels.UNIT
        elif scale not in options:
            raise UserError(f"quality {quality} cannot be coded at scale {scale}/{levels.UNIT} for a {w}x{h} image "
                            f"(offered: {', '.join(f'{s}/{levels.UNIT}' for s in options)})")
        return self._compress_at(img, quality, scale, analyses, effort, bar)

    def _compress_at(self, img: Image, quality: int, scale: int, analyses: dict, effort: int, bar) -> bytes:
        qi = levels.gain_index(self.index_of(quality), scale)
        coded = None
        if scale not in analyses or effort:
            coded = self.coded_image(img, scale)
        if scale not in analyses:
            analyses[scale] = self.analyse(coded)
        streams = self.encode_latents(*self.refined_latents(coded, analyses[scale], qi, effort, bar), qi)
        if img.alpha is not None:
            streams.append(zlib.compress(np.ascontiguousarray(img.alpha).tobytes(), 9))
        mode = img.mode if img.mode in latformat.MODES else ("RGBA" if img.alpha is not None else "RGB")
        lat = latformat.LatFile(
            model=self.name, fingerprint=self.files.fingerprint, quality=quality,
            width=img.pixels.shape[1], height=img.pixels.shape[0], mode=mode, streams=tuple(streams), scale=scale,
        )
        return latformat.pack(lat)

    def compress_to_fit(self, img: Image, max_bytes: int, effort: int = 0, bar=None,
                        scale: int | None = None) -> tuple[bytes, int, bool]:
        """The highest quality whose file fits in max_bytes: (data, quality, fits); ``scale`` as
        for compress."""
        analyses: dict = {}
        best = None
        lo, hi = 0, len(self.qualities) - 1
        while lo <= hi:  # file size grows with quality: binary search
            mid = (lo + hi) // 2
            data = self.compress(img, self.qualities[mid], analyses, effort, bar, scale)
            if len(data) <= max_bytes:
                best, lo = (data, self.qualities[mid]), mid + 1
            else:
                hi = mid - 1
        if best is None:
            q = self.qualities[0]
            return self.compress(img, q, analyses, effort, bar, scale), q, False
        return best[0], best[1], True

    def decompress(self, lat: latformat.LatFile, max_pixels: int | None = None, exact: bool = False) -> Image:
        """The image of ``lat``.  ``max_pixels``: refuse (before any allocation) a file whose
        padded image, each side rounded up to the model's alignment, has more pixels; None or 0:
        no limit beyond the format's.  ``exact``: the fixed-point synthesis, whose pixels are the
        same on every machine and device (slower)."""
        kind = "checkerboard" if self.checkerboard else "hyperprior" if self.hyper else "factorized"
        p = decoding.plan(lat, self.name, self.files.fingerprint, self.qualities, kind, self.model.align, max_pixels)
        try:
            y_hat = self.decode_streams(p.streams, p.qi, p.ph // 16, p.pw // 16)
        except coding.CodingError as exc:
            raise DecodeError(f"corrupt .lat file: {exc}") from None
        x = (self.synthesise_exact if exact else self.synthesise)(y_hat, p.qi)[0, :, :p.ch, :p.cw]
        return decoding.finish(x.permute(1, 2, 0).numpy(), lat, p.alpha)


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


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

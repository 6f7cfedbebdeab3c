"""The transforms of a loaded model: the analysis g_a (image -> latent) and the synthesis g_s
(latent -> image), in float or in fixed point, tiled.

Large images are processed in tiles of the latent grid with a halo of latents around each tile
that covers the transforms' receptive field (aecli/tiling.py), so tiles join without seams and
memory stays bounded by the tile size (plus the small latent tensors).  The fixed-point synthesis
(`decompress --exact`) computes every value as an exact integer (intnet.synthesis): the same
pixels on every machine and device.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch

from .. import tiling
from ..devices import exact_float32
from ..images.image import Image
from ..tiling import shrinking, tiled
from . import intnet

# memory layouts of the transforms: channels-last, which oneDNN convolves faster on x86 CPUs
# (measured against plain NCHW in docs/perf_layout.md)
ANALYSIS_LAYOUT = torch.channels_last
SYNTHESIS_LAYOUT = torch.channels_last


def to_tensor(img: Image, align: int) -> tuple[torch.Tensor, int, int]:
    """(x, h, w): the image's RGB pixels as a uint8 (1, 3, H, W) tensor padded (edge) to a multiple
    of `align`, and its own height and width."""
    px = img.rgb
    h, w = px.shape[:2]
    ph, pw = (-h) % align, (-w) % align
    if ph or pw or not px.flags.writeable:
        px = np.pad(px, ((0, ph), (0, pw), (0, 0)), mode="edge")  # a copy
    # (1, 3, H, W) as a view of the HxWx3 pixels: channels-last memory, one copy of the image at most
    return torch.from_numpy(px).permute(2, 0, 1)[None], h, w


class Transforms:
    """The analysis and both syntheses of `model`, run on `device`."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model, self.device = model, device

    @torch.inference_mode()
    def analyse(self, img: Image) -> torch.Tensor:
        """The quality-independent latent g_a(x): (1, M, H/16, W/16)."""
        x, _, _ = to_tensor(img, self.model.align)
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
    def fixed_point(self) -> tuple[list, torch.Tensor]:
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
        net, gains = self.fixed_point
        ig = gains[qi].view(1, -1, 1, 1)
        unit = 2.0**intnet.ACT_BITS

        def run(t, box):
            a = t.to(self.device, torch.float64).mul_(unit).add_(0.5).floor_()  # y_hat: integer + 12-bit mean
            a = a.mul_(ig).mul_(1.0 / unit).add_(0.5).floor_().clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)
            a = shrinking(net, a, box)
            return a.mul_(255.0 / unit).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).cpu()

        return tiled(run, y_hat, 16, up=True, halo=tiling.HALO, own=True)

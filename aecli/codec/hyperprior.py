"""Latent coding of the hyperprior model: the hyper-latent z, then y given z.

    y = g_a(x) * gain[q];  z = h_a(y) * hgain[q]        (latents())
    round(z)                                    -> stream 0, the table of its channel
    integer h_s(z * inv_hgain[q]) -> table index, mean  (exact on every machine: intnet.py)
    round(y - mean)                             -> stream 1, Gaussian tables (tables.y.*)
    escaped values, z's then y's                -> stream 2
    decoder: y_hat = symbols + mean

The table index of a latent is the first of the stored thresholds (tables.y.thresholds) at or
above its integer scale.  The integer hyper-synthesis runs tile by tile (HYPER_TILE cells with a
halo of HYPER_HALO), so the float64 output of a large image is never held whole.  The checkerboard
model (checkerboard.py) codes z the same way and y in two halves.
"""

from __future__ import annotations

import numpy as np
import torch

from ..devices import exact_float32
from ..tiling import tiled
from . import coding, intnet
from .decoding import STREAMS
from .factorized import FactorizedLatents
from .model import Z_LIMIT

HYPER_TILE = 24  # hyper-latent cells per tile side of the integer hyper-synthesis (the fastest per
# cell on a 50-megapixel image: 7.6 s at 24 against 9.5 s at 32, docs/perf.md); its float64 column
# buffers are bounded per call by intnet.COLUMN_BYTES
HYPER_HALO = 2  # its receptive field: a latent in hyper cell c depends on cells c - 1 .. c + 2, so
# that every integer is that of one piece


def integer_layers(tensors: dict, prefix: str, template: torch.nn.Sequential, device: torch.device) -> list:
    """The integer network stored under `prefix` (int.h_s., int.ctx., ...), shaped as `template`."""
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return intnet.load(own, template, device)


class HyperpriorLatents(FactorizedLatents):
    """The latent coding of a hyperprior model: y's tables and the scaled latent as the factorized
    model's, plus z's tables, the thresholds and the integer hyper-synthesis."""

    kind = "hyperprior"
    streams = STREAMS[kind]  # latent streams in a file: z, y, escapes

    def __init__(self, model: torch.nn.Module, tensors: dict, device: torch.device):
        super().__init__(model, tensors, device)
        t = tensors
        self.z_pmfs = coding.unpack_tables(t["tables.z.pmf"].numpy(), t["tables.z.len"].numpy())
        self.z_offsets = t["tables.z.offset"].numpy()
        self.thresholds = t["tables.y.thresholds"].to(device, torch.float64)
        self.inv_hgain = t["int.inv_hgain"].to(device, torch.float64)
        self.h_s = integer_layers(t, "int.h_s.", model.h_s, device)

    @torch.inference_mode()
    def latents(self, y_base: torch.Tensor, qi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled latent y = g_a(x) * gain[qi] (on the CPU) and the unrounded hyper-latent
        z = h_a(y) * hgain[qi] (on the model's device)."""
        y, _ = super().latents(y_base, qi)
        hg = torch.exp(self.model.hgain[qi]).view(1, -1, 1, 1)
        with exact_float32(self.device):
            return y, self.model.h_a(y.to(self.device)) * hg

    @torch.inference_mode()
    def encode(self, y: torch.Tensor, z: torch.Tensor, qi: int) -> list[bytes]:
        """The streams of y (on the CPU) and z (rounded here)."""
        z = torch.round(z).clamp_(-Z_LIMIT, Z_LIMIT).cpu()
        z_sym = z.to(torch.int64)
        z_bytes, z_esc = coding.encode(z_sym.numpy(), coding.by_channel(z.shape), self.z_pmfs, self.z_offsets)
        y_bytes, y_esc = self.encode_y(y, z_sym, qi)
        return [z_bytes, *y_bytes, coding.pack_escapes(z_esc + y_esc)]

    def encode_y(self, y: torch.Tensor, z_sym: torch.Tensor, qi: int) -> tuple[list[bytes], list[int]]:
        """y's stream given the hyper-latent symbols, and its escaped values."""
        idx, means = self.hyper_params(z_sym, qi)
        # round(y - means), computed in the means' own storage (no longer needed): one latent-sized float less
        res = means.neg_().add_(y).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT)
        del means
        sym = res.to(torch.int32).numpy()
        del res
        y_bytes, y_esc = coding.encode(sym, idx, self.y_pmfs, self.y_offsets)
        return [y_bytes], y_esc

    @torch.inference_mode()
    def decode(self, streams: list[bytes], qi: int, lh: int, lw: int) -> torch.Tensor:
        """y_hat (1, M, lh, lw) from a file's latent streams (at least `streams` of them)."""
        n = self.model.nh  # hyper-latent channels
        esc = coding.EscapeReader(streams[-1])  # z's escapes, then y's
        z_sym = coding.decode(streams[0], coding.by_channel((1, n, lh // 4, lw // 4)), self.z_pmfs, self.z_offsets, esc)
        z_sym = torch.from_numpy(z_sym).clamp_(-Z_LIMIT, Z_LIMIT)
        y_hat = self.decode_y(streams[1:self.streams - 1], z_sym, qi, (1, self.model.m, lh, lw), esc)
        esc.finish()
        return y_hat

    def decode_y(self, streams: list[bytes], z_sym: torch.Tensor, qi: int, shape: tuple,
                 esc: coding.EscapeReader) -> torch.Tensor:
        """y_hat from y's stream, given the hyper-latent symbols."""
        idx, means = self.hyper_params(z_sym, qi)
        sym = coding.decode(streams[0], idx, self.y_pmfs, self.y_offsets, esc)
        return torch.from_numpy(sym).float() + means

    # ---- the integer hyper-synthesis ------------------------------------------------------------
    def tables_and_means(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer (scales, means) at 2**-ACT_BITS -> table indexes (uint8 where they fit) and means
        (float32: an integer below 2**22 times 2**-12 is exact), on the CPU."""
        scales, means = params.chunk(2, dim=1)
        top = len(self.y_pmfs) - 1
        idx = torch.searchsorted(self.thresholds, scales.contiguous(), right=False).clamp_(0, top)
        return idx.to(torch.uint8 if top < 256 else torch.int32).cpu(), (means * 2.0**-intnet.ACT_BITS).to(torch.float32).cpu()

    def hyper_params(self, z_sym: torch.Tensor, qi: int) -> tuple[np.ndarray, torch.Tensor]:
        """Exact table indexes (uint8) and means (float32) of y from the integer hyper-synthesis,
        made compact tile by tile (the float64 output of a whole large image is never held)."""
        idx, means = tiled(lambda t, box: self.tables_and_means(intnet.run(self.h_s, t.to(self.device), box)),
                           self.hyper_input(z_sym, qi), 4, up=True, tile=HYPER_TILE, halo=HYPER_HALO, own=True)
        return idx.numpy(), means

    def hyper_ints(self, z_sym: torch.Tensor, qi: int) -> torch.Tensor:
        """The integer hyper-synthesis output (1, 2M, H/16, W/16) as float32, which holds its
        integers (below 2**22) exactly: the checkerboard model's input."""
        return tiled(lambda t, box: intnet.run(self.h_s, t.to(self.device), box).to(torch.float32).cpu(),
                     self.hyper_input(z_sym, qi), 4, up=True, tile=HYPER_TILE, halo=HYPER_HALO, own=True)

    def hyper_input(self, z_sym: torch.Tensor, qi: int) -> torch.Tensor:
        """The integer hyper-synthesis's input: the hyper-latent symbols times the level's integer gains."""
        return z_sym.to(torch.float64) * self.inv_hgain[qi].view(1, -1, 1, 1).cpu()

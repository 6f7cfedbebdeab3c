"""Latent coding of the checkerboard model: z, then y in two halves, the second given the first.

    z as in the hyperprior model (hyperprior.py)        -> stream 0
    integer h_s(z * inv_hgain[q]) -> hyper, then
      anchors ((row + column) even): integer context model on hyper alone -> table index, mean
      round(y - mean) at the anchors                    -> stream 1
      the rest: the same model on hyper and the decoded anchors -> table index, mean
      round(y - mean) elsewhere                         -> stream 2
    escaped values, z's then the anchors' then the rest's -> stream 3
    decoder: the anchors, then the rest, each symbols + mean

The context model (a 5x5 convolution over the anchors and a 1x1 correction network, both integer:
intnet.py) runs in tiles of CONTEXT_TILE latents with a halo of 2, the context's reach, so every
integer is that of one piece.
"""

from __future__ import annotations

import numpy as np
import torch

from ..tiling import tiled
from . import coding, intnet
from .decoding import STREAMS
from .hyperprior import HyperpriorLatents, integer_layers
from .model import anchors

CONTEXT_TILE = 64  # latents per tile side of the checkerboard context pass (halo 2: its 5x5 reach)


class CheckerboardLatents(HyperpriorLatents):
    """The latent coding of a checkerboard model: the hyperprior's, plus the integer context model."""

    kind = "checkerboard"
    streams = STREAMS[kind]  # latent streams in a file: z, anchors, the rest, escapes

    def __init__(self, model: torch.nn.Module, tensors: dict, device: torch.device):
        super().__init__(model, tensors, device)
        self.ctx = integer_layers(tensors, "int.ctx.", torch.nn.Sequential(model.ctx), device)
        self.ep = integer_layers(tensors, "int.ep.", model.ep, device)

    def encode_y(self, y: torch.Tensor, z_sym: torch.Tensor, qi: int) -> tuple[list[bytes], list[int]]:
        """The two streams of a checkerboard model's latents (anchors, then the rest) and their
        escaped values, in coding order.  Both halves' symbols and table indexes are found (and
        kept as compact vectors) before any entropy coding, so that the hyper-synthesis output
        and the decoded anchors are dropped first; every latent-sized array goes as soon as it
        is used (a 50-megapixel image has 100 MB per float32 copy of its latents)."""
        hyper = self.hyper_ints(z_sym, qi)
        first = anchors(*y.shape[-2:])[0, 0].bool().numpy()
        idx, means = self.params(hyper, None, first)
        sym = torch.sub(y, means).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
        y_anchor = self.anchor_ints(sym, means, first)  # (uses up `means`)
        del means
        anchor_sym, anchor_idx = sym[..., first], idx[..., first]  # compact copies
        del sym, idx
        idx, means = self.params(hyper, y_anchor, ~first)
        del hyper, y_anchor
        sym = means.neg_().add_(y).round_().clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
        del means
        rest_sym, rest_idx = sym[..., ~first], idx[..., ~first]
        del sym, idx
        anchor_bytes, escapes = coding.encode(anchor_sym, anchor_idx, self.y_pmfs, self.y_offsets)
        del anchor_sym, anchor_idx
        rest_bytes, esc = coding.encode(rest_sym, rest_idx, self.y_pmfs, self.y_offsets)
        return [anchor_bytes, rest_bytes], escapes + esc

    def decode_y(self, streams: list[bytes], z_sym: torch.Tensor, qi: int, shape: tuple,
                 esc: coding.EscapeReader) -> torch.Tensor:
        """y_hat of a checkerboard file: the anchors (its first y stream), then the rest given them."""
        hyper = self.hyper_ints(z_sym, qi)
        first = anchors(*shape[-2:])[0, 0].bool().numpy()
        idx, means = self.params(hyper, None, first)
        sym = np.zeros(shape, dtype=np.int32)
        sym[..., first] = coding.decode(streams[0], idx[..., first], self.y_pmfs, self.y_offsets, esc)
        del idx
        mask = torch.from_numpy(first)
        y_hat = torch.from_numpy(sym).to(torch.float32).add_(means).mul_(mask)  # the anchors, zero elsewhere
        y_anchor = self.anchor_ints(sym, means, first)  # (uses up `means`)
        del means
        idx, means = self.params(hyper, y_anchor, ~first)
        del hyper, y_anchor
        sym[...] = 0
        sym[..., ~first] = coding.decode(streams[1], idx[..., ~first], self.y_pmfs, self.y_offsets, esc)
        del idx
        rest = means.add_(torch.from_numpy(sym)).mul_(~mask)
        return y_hat.add_(rest)

    @staticmethod
    def anchor_ints(sym: np.ndarray, means: torch.Tensor, first: np.ndarray) -> torch.Tensor:
        """The decoded anchors as integers at 2**-ACT_BITS (symbol + mean, saturated), zero
        elsewhere, in float32; `means` is used up (scaled in place).  Exact: a symbol below 2**12 in
        size gives a product below 2**24 and a sum below 2**23, both exact in float32; a larger one
        gives a sum beyond the saturation limit 2**22 however it rounds, so the saturated value is
        the same."""
        unit = 2.0**intnet.ACT_BITS
        a = torch.from_numpy(sym).to(torch.float32).mul_(unit).add_(means.mul_(unit))
        a = a.clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)
        return a.mul_(torch.from_numpy(first))

    def params(self, hyper: torch.Tensor, y_anchor: torch.Tensor | None,
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
            idx_k, means_k = self.tables_and_means(out.add_(h).clamp_(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)[None])
            idx = torch.zeros(1, m2 // 2, hh * ww, dtype=idx_k.dtype)
            means = torch.zeros(1, m2 // 2, hh * ww, dtype=torch.float32)
            idx[:, :, pos], means[:, :, pos] = idx_k, means_k
            return idx.view(1, -1, hh, ww), means.view(1, -1, hh, ww)

        mask = torch.from_numpy(np.ascontiguousarray(half)).view(1, 1, *half.shape)
        x = (hyper, mask) if y_anchor is None else (hyper, mask, y_anchor)
        idx, means = tiled(run, x, 1, up=True, tile=CONTEXT_TILE, halo=2)
        return idx.numpy(), means

"""Latent coding of the factorized model: y alone, each channel with its own fixed table.

    y = g_a(x) * gain[q]                                (latents(): the scaled latent)
    round(y)                        -> stream 0, the table of its channel
    escaped values                  -> stream 1
    decoder: y_hat = the symbols

The other kinds build on this class (the same y tables, tables.y.*, and the same scaled latent),
adding a hyper-latent z that picks each latent's table and mean: hyperprior.py, checkerboard.py.
The fitted codec, which fits its networks to each image, codes its latents in fitted/stream.py.
"""

from __future__ import annotations

import torch

from . import coding
from .decoding import STREAMS


class FactorizedLatents:
    """The latent coding of a factorized model (`model`), with its tables from `tensors`."""

    kind = "factorized"
    streams = STREAMS[kind]  # latent streams in a file: y, escapes

    def __init__(self, model: torch.nn.Module, tensors: dict, device: torch.device):
        self.model, self.device = model, device
        self.y_pmfs = coding.unpack_tables(tensors["tables.y.pmf"].numpy(), tensors["tables.y.len"].numpy())
        self.y_offsets = tensors["tables.y.offset"].numpy()

    @torch.inference_mode()
    def latents(self, y_base: torch.Tensor, qi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The scaled latent y = g_a(x) * gain[qi] (on the CPU), and no hyper-latent."""
        return y_base * torch.exp(self.model.gain[qi]).cpu().view(1, -1, 1, 1), None

    @torch.inference_mode()
    def encode(self, y: torch.Tensor, z: torch.Tensor | None, qi: int) -> list[bytes]:
        """The streams of the scaled latent y (on the CPU)."""
        sym = torch.round(y).clamp_(-coding.SYMBOL_LIMIT, coding.SYMBOL_LIMIT).to(torch.int32).numpy()
        y_bytes, esc = coding.encode(sym, coding.by_channel(sym.shape), self.y_pmfs, self.y_offsets)
        return [y_bytes, coding.pack_escapes(esc)]

    @torch.inference_mode()
    def decode(self, streams: list[bytes], qi: int, lh: int, lw: int) -> torch.Tensor:
        """y_hat (1, M, lh, lw) from a file's latent streams (at least `streams` of them)."""
        esc = coding.EscapeReader(streams[1])
        shape = (1, self.model.m, lh, lw)
        sym = coding.decode(streams[0], coding.by_channel(shape), self.y_pmfs, self.y_offsets, esc)
        esc.finish()
        return torch.from_numpy(sym).float()

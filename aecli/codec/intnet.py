"""The hyper-synthesis as an integer network: exactly the same output on every machine.

The decoder picks each latent's probability table from the hyper-synthesis output.  Run in
ordinary floating point, that output differs in its last bits between CPU, GPU and BLAS
builds, a table index can flip, and the file no longer decodes.  So at export time the
trained float layers are converted to fixed point:

* activations are integers a with real value a / 2**ACT_BITS, saturated to +-ACT_LIMIT;
* weights are integers w with real value w / 2**shift (per layer, |w| < 2**15);
* biases are integers at the accumulator's scale.

Every convolution is then a sum of integer products whose magnitude is bounded below 2**53
(checked at export), so it is computed *exactly* in float64 by any BLAS or GPU, in any
summation order, with or without FMA.  Re-scaling divides by a power of two and rounds,
which is exact too.  The result is a pure function of the stored integers.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..tiling import shrinking

ACT_BITS = 12
ACT_LIMIT = (1 << 22) - 1
WEIGHT_LIMIT = (1 << 15) - 1
EXACT_LIMIT = 1 << 53
COLUMN_BYTES = 192 << 20  # largest float64 column buffer one convolution call may need


def _pieces(column_bytes: int, channels: int) -> list[tuple[int, int]]:
    """Channel ranges splitting a convolution so that each call's column buffer stays within
    COLUMN_BYTES (one range when it already does)."""
    n = min(channels, max(1, -(-column_bytes // COLUMN_BYTES)))
    step = -(-channels // n)
    return [(c, min(c + step, channels)) for c in range(0, channels, step)]


class IntLayer:
    def __init__(self, kind: str, weight: torch.Tensor, bias: torch.Tensor, shift: int, stride: int, padding: int,
                 output_padding: int, relu: bool, device: torch.device | str = "cpu"):
        self.kind, self.weight, self.bias, self.shift = kind, weight, bias, shift
        self.stride, self.padding, self.output_padding, self.relu = stride, padding, output_padding, relu
        # the integers as float64 once (exact: |w| < 2**15, |b| < 2**53)
        self._w = weight.to(device, torch.float64)
        self._b = bias.to(device, torch.float64)
        if ACT_LIMIT * WEIGHT_LIMIT * self.fan_in() + int(bias.abs().max()) >= EXACT_LIMIT:
            raise ValueError("an integer layer could exceed float64's exact range")

    def fan_in(self) -> int:
        w = self.weight
        if self.kind == "deconv":  # (cin, cout, k, k): each output sums over cin*k*k/stride^2, bounded by cin*k*k
            return w.shape[0] * w.shape[2] * w.shape[3]
        return w.shape[1] * w.shape[2] * w.shape[3]

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        # the bias goes into the convolution's own sum: every partial sum is an integer below
        # 2**53 (checked at export), so the order of the additions cannot change the result
        # cuDNN is kept out: its FFT and Winograd algorithms transform the integers (inexact);
        # without it, CUDA convolves by im2col and an FP64 matrix product, exact like the CPU's
        with torch.backends.cudnn.flags(enabled=False):
            return self._rescale(self._accumulate(a))

    def _accumulate(self, a: torch.Tensor) -> torch.Tensor:
        """The exact integer accumulator, in pieces where the convolution's column buffer (the
        im2col / col2im matrix, float64) would exceed COLUMN_BYTES: a convolution sums over
        slices of its input channels, a transposed one computes slices of its output channels.
        Each piece is a sum of the same integer products (partial sums stay below 2**53), so
        the result is the same integers whatever the pieces."""
        w, b = self._w, self._b
        k = w.shape[2] * w.shape[3]
        if self.kind == "deconv":  # columns: (cout * k, input positions)
            pieces = _pieces(w.shape[1] * k * a.shape[-2] * a.shape[-1] * 8, w.shape[1])
            if len(pieces) == 1:
                return F.conv_transpose2d(a, w, b, self.stride, self.padding, self.output_padding)
            return torch.cat([F.conv_transpose2d(a, w[:, c0:c1], b[c0:c1], self.stride, self.padding, self.output_padding)
                              for c0, c1 in pieces], dim=1)
        rows = (a.shape[-2] + 2 * self.padding - w.shape[2]) // self.stride + 1
        cols = (a.shape[-1] + 2 * self.padding - w.shape[3]) // self.stride + 1
        pieces = _pieces(w.shape[1] * k * rows * cols * 8 if k > 1 else 0, w.shape[1])  # columns: (cin * k, output positions)
        acc = F.conv2d(a[:, pieces[0][0]:pieces[0][1]], w[:, pieces[0][0]:pieces[0][1]], b, self.stride, self.padding)
        for c0, c1 in pieces[1:]:
            acc.add_(F.conv2d(a[:, c0:c1], w[:, c0:c1], None, self.stride, self.padding))
        return acc

    def _rescale(self, acc: torch.Tensor) -> torch.Tensor:
        """An exact integer accumulator -> this layer's output activations, in place."""
        out = acc.mul_(2.0 ** -self.shift).add_(0.5).floor_()  # x 2**-shift is exact; round half up
        if self.relu:
            out = out.clamp_min_(0)
        return out.clamp_(-ACT_LIMIT, ACT_LIMIT)

    def at(self, a: torch.Tensor, pos: torch.Tensor, taps: list[tuple[int, int]]) -> torch.Tensor:
        """This layer (a stride-1 'same' convolution) at the flat positions `pos` of a (1, C, H, W)
        only, reading only the kernel `taps` (row, column) — the others must meet zeros: (1, Cout, K).
        The same integers as the whole layer there: each is the same integer sum (below 2**53),
        only its zero terms left out."""
        if self.kind != "conv" or self.stride != 1:
            raise ValueError("only a stride-1 convolution can be evaluated at chosen positions")
        pad = self.padding
        h, w = a.shape[-2:]
        padded = F.pad(a, (pad, pad, pad, pad))
        cols = torch.cat([padded[0, :, i:i + h, j:j + w].reshape(a.shape[1], -1)[:, pos] for i, j in taps])
        weight = torch.cat([self._w[:, :, i, j] for i, j in taps], dim=1)  # (Cout, C * len(taps)), cols' order
        return self._rescale(torch.addmm(self._b.view(-1, 1), weight, cols)).unsqueeze(0)

    def pointwise(self, a: torch.Tensor) -> torch.Tensor:
        """This layer (a 1x1 convolution) on a (C, K) set of positions: one exact integer matrix
        product, the same integers as the convolution."""
        if self.kind != "conv" or self.weight.shape[-2:] != (1, 1):
            raise ValueError("only a 1x1 convolution runs on a set of positions")
        return self._rescale(torch.addmm(self._b.view(-1, 1), self._w[:, :, 0, 0], a))


def run_pointwise(net: list[IntLayer], a: torch.Tensor) -> torch.Tensor:
    """An integer network of 1x1 convolutions on integer-valued float64 activations (C, K)."""
    a = a.to(torch.float64).clamp(-ACT_LIMIT, ACT_LIMIT)
    for layer in net:
        a = layer.pointwise(a)
    return a


def _geometry(layer: nn.Module) -> tuple[str, int, int, int]:
    if isinstance(layer, nn.ConvTranspose2d):
        return "deconv", layer.stride[0], layer.padding[0], layer.output_padding[0]
    if isinstance(layer, nn.Conv2d):
        return "conv", layer.stride[0], layer.padding[0], 0
    raise TypeError(f"cannot convert {type(layer).__name__} to an integer layer")


def export(seq: nn.Sequential) -> dict[str, torch.Tensor]:
    """Convert a Sequential of (de)convolutions and ReLUs into integer tensors."""
    layers = [m for m in seq if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        w_int, b_int, shift = _integers(layer)
        out[f"{i}.weight"] = w_int
        out[f"{i}.bias"] = b_int
        out[f"{i}.shift"] = torch.tensor([shift], dtype=torch.int32)
    load(out, seq)  # checks every accumulator's bound
    return out


def _integers(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A (transposed) convolution's weights as integers at 2**-shift, its bias at 2**-(shift + ACT_BITS)."""
    w = layer.weight.detach().double()
    shift = weight_shift(float(w.abs().max()))
    w_int = torch.round(w * 2.0**shift).to(torch.int32)
    b_int = torch.round(layer.bias.detach().double() * 2.0 ** (shift + ACT_BITS)).to(torch.int64)
    return w_int, b_int, shift


def load(tensors: dict[str, torch.Tensor], template: nn.Sequential, device: torch.device | str = "cpu") -> list[IntLayer]:
    """Build the integer layers from exported tensors, using `template` for geometry, on `device`."""
    convs = [m for m in template if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    net = []
    for i, layer in enumerate(convs):
        kind, stride, padding, output_padding = _geometry(layer)
        net.append(
            IntLayer(
                kind,
                tensors[f"{i}.weight"],
                tensors[f"{i}.bias"],
                int(tensors[f"{i}.shift"][0]),
                stride,
                padding,
                output_padding,
                relu=i < len(convs) - 1,
                device=device,
            )
        )
    return net


def run(net: list[IntLayer], a: torch.Tensor, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Run the integer network on integer-valued float64 activations (N, C, H, W); with `box`, a
    tile's own cells in the window `a`, only what their output needs (tiling.shrinking: the same
    integers) and that output alone."""
    a = a.to(torch.float64).clamp(-ACT_LIMIT, ACT_LIMIT)
    if box is not None:
        return shrinking(net, a, box)
    for layer in net:
        a = layer(a)
    return a


# ---- the synthesis transform in fixed point (decoding with --exact) --------------------------------

NORM_LIMIT = (1 << 26) - 1  # an IGDN norm, in units of 2**-ACT_BITS (a real norm below 16384)


def weight_shift(peak: float) -> int:
    """The largest s <= 24 with peak * 2**s <= WEIGHT_LIMIT, by exact comparisons (no log: the same
    on every machine)."""
    if peak <= 0:
        return 24
    s = 24
    while s > -64 and peak * 2.0**s > WEIGHT_LIMIT:  # x 2**s is exact in float64
        s -= 1
    return s


class IntIGDN:
    """Inverse GDN, y_i = x_i * (beta_i + sum_j gamma_ij |x_j|), on integer activations.

    The norm is an integer convolution of |a| (exact, like IntLayer), rescaled to ACT_BITS
    fractional bits and saturated to NORM_LIMIT; the product a * norm stays below 2**48, exact in
    float64, and is rescaled by 2**-ACT_BITS with round half up."""

    def __init__(self, beta: torch.Tensor, gamma: torch.Tensor, device: torch.device | str = "cpu"):
        beta, gamma = beta.double(), gamma.double()
        self.shift = weight_shift(float(gamma.abs().max()))
        c = gamma.shape[0]
        self._w = torch.round(gamma * 2.0**self.shift).reshape(c, c, 1, 1).to(device)
        self._b = torch.round(beta * 2.0 ** (self.shift + ACT_BITS)).to(device)
        bound = ACT_LIMIT * WEIGHT_LIMIT * c + float(self._b.abs().max())
        if bound >= EXACT_LIMIT:
            raise ValueError("integer IGDN could exceed float64's exact range")

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        with torch.backends.cudnn.flags(enabled=False):
            acc = F.conv2d(a.abs(), self._w, self._b)
        norm = acc.mul_(2.0**-self.shift).add_(0.5).floor_().clamp_(0, NORM_LIMIT)
        out = norm.mul_(a).mul_(2.0**-ACT_BITS).add_(0.5).floor_()  # |a * norm| < 2**48: exact
        return out.clamp_(-ACT_LIMIT, ACT_LIMIT)


def synthesis(seq: nn.Sequential, device: torch.device | str = "cpu") -> list:
    """The fixed-point version of a synthesis Sequential of transposed convolutions and inverse GDNs,
    computed from its float weights (rounded to integers by exact operations: the same integers on
    every machine)."""
    from .layers import GDN

    net = []
    for layer in seq:
        if isinstance(layer, GDN):
            if not layer.inverse:
                raise TypeError("only inverse GDN is converted (the synthesis side)")
            with torch.no_grad():
                beta = layer._nonneg(layer.beta.detach().double(), layer._beta_floor)
                gamma = layer._nonneg(layer.gamma.detach().double(), 0.0)
            net.append(IntIGDN(beta, gamma, device))
            continue
        kind, stride, padding, output_padding = _geometry(layer)
        w_int, b_int, shift = _integers(layer)
        net.append(IntLayer(kind, w_int, b_int, shift, stride, padding, output_padding, relu=False, device=device))
    return net

"""The two networks of a fitted image, and their parameters as integers.

* `Arm`: an MLP (ReLU) from a latent's context features (context.py) to the mean and the scale
  level of its Laplace model (laplace.py).  In a file its weights and biases are integers at
  2**-exponent; the coder runs it as an integer network (`IntArm`, intnet's exact fixed point), so
  every machine derives the same tables.
* `Synthesis`: every latent plane upsampled (bicubic) to the image size (from structure version 4
  the finest plane as the nine values of each pixel's 3x3 neighbourhood), a 1x1 MLP to the colour
  channels and residual 3x3 layers (kernels.py runs the first two fast).  It runs in floating point
  (pixels may differ in the last level between machines; the latents never do).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .. import intnet
from ..coding import CodingError
from . import context, kernels
from .header import COARSE, OFFSETS, PHASES, SCALE_LEVELS, Structure, mean_steps

WEIGHT_LIMIT = intnet.WEIGHT_LIMIT


class Arm(nn.Module):
    def __init__(self, s: Structure):
        super().__init__()
        dims = s.arm_dims()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():  # start near "mean 0, middle scale"
            self.layers[-1].weight.mul_(0.1)
            self.layers[-1].bias.copy_(torch.tensor([0.0, 20.0]))

    def pass_layers(self, phase: int, level: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(weights, biases) of the layers as pass (phase, level) runs them: the first layer keeps
        the columns its compact features fill and takes the pass's one-hots as bias, as IntArm
        does."""
        w, bias = fold_pass(self.layers[0].weight, self.layers[0].bias, phase, level)
        return [w] + [layer.weight for layer in self.layers[1:]], [bias] + [layer.bias for layer in self.layers[1:]]

    def forward(self, f: torch.Tensor, phase: int, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Compact features (n, F) of pass (phase, level) (context.phase_features, compact=True) ->
        (mean, scale level) per latent."""
        weights, biases = self.pass_layers(phase, level)
        h = f.t()  # (units, n): these thin products run several times faster than over (n, units)
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = torch.addmm(b[:, None], w, F.relu(h) if i else h)
        return h[0], h[1]

    def bits(self, f: torch.Tensor, q: torch.Tensor, phase: int, level: int) -> torch.Tensor:
        """The total bits of latents q (n,) of pass (phase, level) with features f (n, F): the sum
        of laplace.bits(q, *self(f, phase, level)), computed in one fused pass (kernels.py)."""
        return kernels.laplace_mlp_bits(f.t(), q, *self.pass_layers(phase, level))


def fold_pass(w: torch.Tensor, b: torch.Tensor, phase: int, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ARM's first layer (weight (out, in), bias) as pass (phase, level) runs it: the columns
    its compact features fill, and the pass's one-hot columns added to the bias (float or integer
    tensors alike)."""
    return w[:, pass_columns(phase)], b + w[:, OFFSETS + COARSE + phase] + w[:, OFFSETS + COARSE + PHASES + level]


def pass_columns(phase: int) -> list[int]:
    """The ARM's input columns that compact features of a pass fill: its visible neighbours, then
    the coarse values (the one-hots are constant in a pass)."""
    return [i for i, v in enumerate(context.available(phase)) if v] + list(range(OFFSETS, OFFSETS + COARSE))


class Synthesis(nn.Module):
    def __init__(self, s: Structure):
        super().__init__()
        self.aligned = s.version >= 2  # header.py: how planes are upsampled
        self.fine_kernel = s.fine_kernel
        dims = s.synth_dims()
        self.mlp = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(dims[:-1], dims[1:]))
        self.refine = nn.ModuleList(nn.Conv2d(s.channels, s.channels, 3) for _ in range(s.refine))
        with torch.no_grad():
            self.mlp[-1].bias.fill_(0.5)
            if self.fine_kernel > 1:
                # Start as the synthesis that reads the pixel's own finest latent alone: the other
                # taps at 0, the rest drawn as for a layer of that many inputs (docs/fitted.md,
                # "The finest plane's 3x3": a random start for all nine taps lost).
                taps, w = self.fine_kernel ** 2, self.mlp[0].weight[:, :, 0, 0]
                inputs = w.shape[1] - taps + 1
                w[:, :taps] = 0
                w[:, taps // 2] = (torch.rand(w.shape[0]) * 2 - 1) * inputs ** -0.5
                w[:, taps:] *= (w.shape[1] / inputs) ** 0.5
            for r in self.refine:
                r.weight.mul_(0.01)
                r.bias.zero_()

    def forward(self, planes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """planes: (h_k, w_k) tensors, finest first -> (1, C, H, W) image on 0..1 (not clamped)."""
        h, w = size
        up = [upsample(p, size, 1 << k, self.aligned) for k, p in enumerate(planes)]
        up[0] = neighbourhood(up[0], self.fine_kernel)
        x = torch.cat(up, dim=1)[0].reshape(-1, h * w)
        x = kernels.pointwise_mlp(x, [layer.weight.flatten(1) for layer in self.mlp], [layer.bias for layer in self.mlp])
        x = x.reshape(1, -1, h, w)
        for r in self.refine:
            x = x + r(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return x


def neighbourhood(u: torch.Tensor, kernel: int) -> torch.Tensor:
    """(1, 1, h, w) -> (1, kernel**2, h, w): the kernel x kernel neighbourhood of each value, row by
    row (edges repeated), as a kernel x kernel convolution reads it."""
    if kernel == 1:
        return u
    r, (h, w) = kernel // 2, u.shape[-2:]
    f = F.pad(u, (r, r, r, r), mode="replicate")[0, 0]
    return torch.stack([f[i:i + h, j:j + w] for i in range(kernel) for j in range(kernel)])[None]


def upsample(p: torch.Tensor, size: tuple[int, int], factor: int, aligned: bool) -> torch.Tensor:
    """Plane p (h, w), `factor` times coarser than the image, -> (1, 1, *size) (header.py, version)."""
    if aligned:
        return kernels.upsample_aligned(p, factor, size)
    p = p[None, None]
    if tuple(p.shape[-2:]) == tuple(size):
        return p
    return F.interpolate(p, size=size, mode="bicubic", align_corners=False)


def tensors(arm: Arm, synth: Synthesis) -> list[torch.Tensor]:
    """Every parameter in Structure.tensor_shapes() order (1x1 convolutions as matrices)."""
    out = []
    for layer in arm.layers:
        out += [layer.weight, layer.bias]
    for layer in synth.mlp:
        out += [layer.weight.flatten(1), layer.bias]
    for layer in synth.refine:
        out += [layer.weight, layer.bias]
    return out


def quantise(t: torch.Tensor, exponent: int) -> np.ndarray:
    """A tensor's integers at 2**-exponent (saturated to what the integer network allows)."""
    v = torch.round(t.detach().double() * 2.0**exponent).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT)
    return v.to(torch.int64).numpy()


def load_integers(arm: Arm, synth: Synthesis, ints: list[np.ndarray], exponents: tuple[int, ...]) -> None:
    """Set the float networks to the values the integers stand for."""
    with torch.no_grad():
        for t, q, e in zip(tensors(arm, synth), ints, exponents):
            t.view(-1).copy_(torch.from_numpy(np.asarray(q, dtype=np.float64).reshape(-1) * 2.0**-e))


class IntArm:
    """The ARM in exact integer arithmetic (intnet.IntLayer): compact features (context.phase_features
    with compact=True) of one pass -> (centre, mean fraction, scale level) per latent, the same integers on
    every machine.  Per pass, the first layer keeps only the columns of the features that can be
    non-zero; the one-hots of the pass (phase, level) are added to its bias: the same integer sums
    with their zero terms left out and their constant terms summed first, exact either way."""

    def __init__(self, ints: list[np.ndarray], exponents: tuple[int, ...], s: Structure):
        self.s = s
        self.steps = mean_steps(s.version)
        self.layers = []
        n = s.arm_tensors() // 2
        self.weights, self.biases = [], []
        for i in range(n):
            if exponents[2 * i + 1] != exponents[2 * i]:
                raise CodingError("corrupt fitted header (an ARM layer's weight and bias have different steps)")
            w = torch.from_numpy(np.asarray(ints[2 * i], dtype=np.int64))
            b = torch.from_numpy(np.asarray(ints[2 * i + 1], dtype=np.int64))
            self.weights.append(w)
            self.biases.append(b)
            self.layers.append(intnet.IntLayer("conv", w.to(torch.int32)[:, :, None, None], b * (1 << intnet.ACT_BITS),
                                               exponents[2 * i], 1, 0, 0, relu=i < n - 1))
        self._first: dict[tuple[int, int], intnet.IntLayer] = {}

    def first(self, phase: int, level: int) -> intnet.IntLayer:
        """The first layer of one pass: visible neighbours and coarse values in, one-hots in the bias."""
        key = (phase, level)
        if key not in self._first:
            first = self.layers[0]
            w, bias = fold_pass(self.weights[0], self.biases[0], phase, level)
            self._first[key] = intnet.IntLayer("conv", w.to(torch.int32)[:, :, None, None],
                                               bias * (1 << intnet.ACT_BITS), first.shift, 1, 0, 0, relu=first.relu)
        return self._first[key]

    def __call__(self, features: torch.Tensor, phase: int, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """features: (n, F) compact integer-valued features of pass (phase, level) -> (centre,
        fraction, scale) int64 arrays: the mean is centre + fraction / self.steps, with fraction in
        -steps/2 .. steps/2 - 1 (laplace.table_index)."""
        a = features.t().to(torch.float64) * float(1 << intnet.ACT_BITS)
        out = intnet.run_pointwise([self.first(phase, level)] + self.layers[1:], a)  # (2, n), units of 2**-ACT_BITS
        n = self.steps  # a power of two: every step below is exact
        steps = torch.floor(out[0] * (n * 2.0**-intnet.ACT_BITS) + 0.5)  # the mean in steps of 1/n
        centre = torch.floor((steps + n // 2) * (1.0 / n))
        fraction = steps - n * centre
        level_out = torch.floor(out[1] * 2.0**-intnet.ACT_BITS + 0.5).clamp(0, SCALE_LEVELS - 1)
        return centre.to(torch.int64).numpy(), fraction.to(torch.int64).numpy(), level_out.to(torch.int64).numpy()

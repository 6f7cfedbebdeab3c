"""The two networks of a fitted image, and their parameters as integers.

* `Arm`: an MLP (ReLU) from a latent's context features (context.py) to the mean and the scale
  level of its Laplace model (laplace.py).  In a file its weights and biases are integers at
  2**-exponent; the coder runs it as an integer network (intarm.py, intnet's exact fixed point), so
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

from . import kernels
from .header import PHASES, Structure
from .intarm import WEIGHT_LIMIT, fold_pass


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

    def plane_bits(self, y: torch.Tensor, coarse: torch.Tensor | None, level: int) -> torch.Tensor:
        """The total bits of plane y (h, w) of `level`, all its passes, its coarser plane `coarse`
        (None for the coarsest): the sum of laplace.bits(q, *self(f, phase, level)) over its passes,
        in one fused kernel (kernels.plane_bits)."""
        return kernels.plane_bits(y, coarse, [self.pass_layers(p, level) for p in range(PHASES)])


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

    def inputs(self, planes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """What the 1x1 layers read: (inputs, H * W), every plane upsampled to the image size."""
        h, w = size
        up = [upsample(p, size, 1 << k, self.aligned) for k, p in enumerate(planes)]
        up[0] = neighbourhood(up[0], self.fine_kernel)
        return torch.cat(up, dim=1)[0].reshape(-1, h * w)

    def layers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(weights as matrices, biases) of the 1x1 layers, as kernels.pointwise_mlp takes them."""
        return [layer.weight.flatten(1) for layer in self.mlp], [layer.bias for layer in self.mlp]

    def mse(self, planes: list[torch.Tensor], size: tuple[int, int], target: torch.Tensor) -> torch.Tensor:
        """The mean squared error of the image (not clamped) against target (C, H, W): without
        refine layers, in one fused pass (kernels.pointwise_mse)."""
        if len(self.refine):
            return ((self(planes, size)[0] - target) ** 2).mean()
        return kernels.pointwise_mse(self.inputs(planes, size), target.reshape(target.shape[0], -1), *self.layers())

    def forward(self, planes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """planes: (h_k, w_k) tensors, finest first -> (1, C, H, W) image on 0..1 (not clamped)."""
        h, w = size
        x = kernels.pointwise_mlp(self.inputs(planes, size), *self.layers())
        x = x.reshape(1, -1, h, w)
        for r in self.refine:
            x = x + r(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return x


def neighbourhood(u: torch.Tensor, kernel: int) -> torch.Tensor:
    """(1, 1, h, w) -> (1, kernel**2, h, w): the kernel x kernel neighbourhood of each value, row by
    row (edges repeated), as a kernel x kernel convolution reads it."""
    return u if kernel == 1 else kernels.neighbourhood(u[0, 0], kernel)[None]


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

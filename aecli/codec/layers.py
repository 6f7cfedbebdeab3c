"""Building blocks of the codec's transforms: convolutions and (inverse) GDN."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same' convolution that downsamples by `stride`."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by exactly `stride`."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class _LowerBound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # pass the gradient where x is above the bound, or where it would raise x back above it
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound) whose gradient never gets stuck below the bound (unlike clamp)."""
    return _LowerBound.apply(x, bound)


def placed(values: torch.Tensor) -> torch.Tensor:
    """`values`, worked out on the CPU, copied into a new tensor on the default device (that of a
    `with torch.device(...)` block).  Models do their initial values' arithmetic on the CPU: any
    arithmetic on torch's meta device, where registry.check_size builds a model to size it, imports
    torch's compiler stack, seconds of start-up (tests/test_cli.py checks that none does)."""
    return torch.empty(values.shape, dtype=values.dtype).copy_(values)


class GDN(nn.Module):
    """Generalized divisive normalization with the L1 norm (Johnston et al., 2019).

    y_i = x_i / (beta_i + sum_j gamma_ij |x_j|); `inverse=True` multiplies instead (IGDN).
    beta and gamma are kept non-negative by a squared reparameterisation with a floor.
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._pedestal = 2.0**-18
        self._beta_floor = 1e-6
        # sqrt(1 + pedestal) and sqrt(gamma_init * I + pedestal), the float32 values worked out on
        # the CPU and the tensors filled with them (as `placed`, without a CPU copy of gamma)
        def root(v: float) -> float:
            return float(torch.sqrt(torch.tensor(v, dtype=torch.float32, device="cpu") + self._pedestal))

        self.beta = nn.Parameter(torch.full((channels,), root(1.0)))
        gamma = torch.full((channels, channels), root(0.0))
        gamma.diagonal().fill_(root(gamma_init))
        self.gamma = nn.Parameter(gamma)

    def _nonneg(self, p: torch.Tensor, floor: float) -> torch.Tensor:
        p = lower_bound(p, (floor + self._pedestal) ** 0.5)
        return p * p - self._pedestal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = self._nonneg(self.beta, self._beta_floor)
        gamma = self._nonneg(self.gamma, 0.0).reshape(c, c, 1, 1)
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm

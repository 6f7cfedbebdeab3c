"""The fitted codec's hot parts, written for speed on a CPU (the fit runs them thousands of times on
every pixel and latent):

* `upsample_aligned`: bicubic upsampling by an exact power of two (PyTorch's bicubic, A = -0.75,
  half-pixel centres, edges repeated), as two separable passes of 5 taps whose weights depend on
  the output's phase; then cropped to the image size.  Each pass is one small matrix product, about
  seven times faster, forward and backward, than F.interpolate; it agrees with
  F.interpolate(scale_factor=2**k) to float rounding.
* `pointwise_mlp`: a 1x1 MLP (ReLU between layers) over (channels, pixels) in chunks of pixels,
  so that every activation stays in the cache; its backward pass recomputes the activations chunk
  by chunk instead of keeping them.  Two to three times faster, forward and backward, than
  F.linear over (pixels, channels), and the memory it keeps is its input alone.
* `laplace_mlp_bits`: the ARM and the Laplace bits of its latents (laplace.bits) in one pass over
  chunks of latents, computing the gradients of their sum on the way (the fit needs nothing else).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from . import laplace
from .header import SCALE_LEVELS
from .decoder import bicubic_phases
from .laplace import B_MIN, PROB_FLOOR, STEP

CHUNK = 16384  # pixels per chunk: 16 channels of float32 take 1 MiB


@functools.lru_cache(maxsize=16)
def _phases(factor: int) -> torch.Tensor:
    """(factor, 5): output sample factor*m + r is the dot product of row r with source samples
    m-2 .. m+2 (the source padded by 2 at each end): the numpy decoder's weights."""
    return torch.from_numpy(bicubic_phases(factor))


def upsample_aligned(p: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
    """Plane p (h, w) -> (1, 1, *size): bicubic by `factor` (a power of two), cropped to `size`
    (at most h*factor x w*factor).  Columns, then rows: each a product of the (factor, 5) phase
    weights with the 5 shifted copies of the padded input, the phases then interleaved."""
    h, w = p.shape
    if factor == 1:
        return p[None, None, :size[0], :size[1]]
    k = _phases(factor).to(p.dtype)
    x = F.pad(p[None, None], (2, 2, 2, 2), mode="replicate")[0, 0]  # (h+4, w+4)
    x = k @ torch.stack([x[:, j:j + w] for j in range(5)]).reshape(5, -1)  # (factor, (h+4) w)
    x = x.reshape(factor, h + 4, w).permute(1, 2, 0).reshape(h + 4, w * factor)[:, :size[1]]
    x = k @ torch.stack([x[j:j + h] for j in range(5)]).reshape(5, -1)  # (factor, h W)
    return x.reshape(factor, h, size[1]).permute(1, 0, 2).reshape(1, 1, h * factor, size[1])[:, :, :size[0]]


def _forward(x: torch.Tensor, ws, bs) -> list[torch.Tensor]:
    acts = [x]
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = torch.addmm(b[:, None], w, x)
        if i < len(ws) - 1:
            x = x.clamp_(min=0)
        acts.append(x)
    return acts


def _backward(acts: list[torch.Tensor], g: torch.Tensor, ws, gw: list[torch.Tensor], gb: list[torch.Tensor]) -> torch.Tensor:
    """Back through the layers whose activations `_forward` gave: add the weights' and biases'
    gradients into gw and gb, return the input's."""
    for i in range(len(ws) - 1, -1, -1):
        a = acts[i]
        gw[i].addmm_(g, a.t())
        gb[i] += g.sum(1)
        g = ws[i].t() @ g
        if i > 0:
            g = torch.ops.aten.threshold_backward(g, a, 0)
    return g


def _output(x: torch.Tensor, ws, bs) -> torch.Tensor:
    """The MLP's output over x (I, N), chunk by chunk, keeping no activations (no graph)."""
    with torch.no_grad():
        out = x.new_empty(ws[-1].shape[0], x.shape[1])
        for s in range(0, x.shape[1], CHUNK):
            out[:, s:s + CHUNK] = _forward(x[:, s:s + CHUNK], ws, bs)[-1]
    return out


def _interleave(ws, bs) -> list[torch.Tensor]:
    """[w0, b0, w1, b1, ...]: the order the autograd functions take (and give) parameters in."""
    return [t for wb in zip(ws, bs) for t in wb]


class _PointwiseMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, *params):
        ctx.save_for_backward(x, *params)
        return _output(x, params[0::2], params[1::2])

    @staticmethod
    def backward(ctx, grad):
        x, *params = ctx.saved_tensors
        ws, bs = params[0::2], params[1::2]
        gw = [torch.zeros_like(w) for w in ws]
        gb = [torch.zeros_like(b) for b in bs]
        gx = torch.empty_like(x)
        for s in range(0, x.shape[1], CHUNK):
            acts = _forward(x[:, s:s + CHUNK], ws, bs)
            gx[:, s:s + CHUNK] = _backward(acts, grad[:, s:s + CHUNK], ws, gw, gb)
        return (gx, *_interleave(gw, gb))


def pointwise_mlp(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    """x (I, N) -> (O, N): weights[i] (out, in) and biases[i] (out,), ReLU between layers."""
    params = _interleave(weights, biases)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *params)):
        return _PointwiseMLP.apply(x.contiguous(), *params)
    return _output(x, weights, biases)


def _laplace_bits_grad(q: torch.Tensor, mu: torch.Tensor, t: torch.Tensor):
    """laplace.bits(q, mu, t) and its gradients with respect to q, mu and t, computed together."""
    tc = t.clamp(0, SCALE_LEVELS - 1)
    b = torch.exp(math.log(B_MIN) + tc * STEP)
    d = q - mu
    s = torch.sign(d)
    v = -d.abs()
    hi, lo = v + 0.5, v - 0.5  # lo < 0 always
    e_hi = torch.exp(-hi.abs() / b)
    e_lo = torch.exp(lo / b)
    cdf_hi = torch.where(hi < 0, 0.5 * e_hi, 1 - 0.5 * e_hi)
    p = cdf_hi - 0.5 * e_lo
    live = p >= PROB_FLOOR
    bits = -torch.log2(p.clamp_min(PROB_FLOOR))
    dbits_dp = torch.where(live, -1 / (p * math.log(2)), torch.zeros_like(p))
    dens_hi, dens_lo = e_hi / (2 * b), e_lo / (2 * b)  # the density at either edge
    dp_dv = dens_hi - dens_lo
    dp_db = (lo * dens_lo - hi * dens_hi) / b
    g_v = dbits_dp * dp_dv
    g_t = dbits_dp * dp_db * b * STEP * ((t >= 0) & (t <= SCALE_LEVELS - 1))
    return bits, -s * g_v, s * g_v, g_t


class _LaplaceMLPBits(torch.autograd.Function):
    """Sum of the bits of q under the Laplace model an MLP gives from features f: its gradients
    are computed in the forward pass, chunk by chunk, and kept (the fit needs this sum only)."""

    @staticmethod
    def forward(ctx, f, q, *params):
        ws, bs = params[0::2], params[1::2]
        gw = [torch.zeros_like(w) for w in ws]
        gb = [torch.zeros_like(b) for b in bs]
        gf, gq = torch.empty_like(f), torch.empty_like(q)
        total = q.new_zeros((), dtype=torch.float64)
        for s in range(0, q.shape[0], CHUNK):
            acts = _forward(f[:, s:s + CHUNK], ws, bs)
            out = acts[-1]
            bits, gq[s:s + CHUNK], g_mu, g_t = _laplace_bits_grad(q[s:s + CHUNK], out[0], out[1])
            total += bits.sum(dtype=torch.float64)
            g = torch.stack([g_mu, g_t])
            gf[:, s:s + CHUNK] = _backward(acts, g, ws, gw, gb)
        ctx.save_for_backward(gf, gq, *_interleave(gw, gb))
        return total.to(q.dtype)

    @staticmethod
    def backward(ctx, grad):
        return tuple(g * grad for g in ctx.saved_tensors)


def laplace_mlp_bits(f: torch.Tensor, q: torch.Tensor, weights: list[torch.Tensor],
                     biases: list[torch.Tensor]) -> torch.Tensor:
    """sum(laplace.bits(q, mean, scale)) with (mean, scale) = the MLP of features f (F, n):
    what nets.Arm and laplace.bits give, in one pass over chunks of latents."""
    params = _interleave(weights, biases)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (f, q, *params)):
        return _LaplaceMLPBits.apply(f.contiguous(), q.contiguous(), *params)
    with torch.no_grad():  # the bits alone (fit.finalise)
        out = _output(f, weights, biases)
        return laplace.bits(q, out[0], out[1]).sum(dtype=torch.float64).to(q.dtype)

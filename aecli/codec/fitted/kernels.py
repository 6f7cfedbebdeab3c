"""The fitted codec's hot parts, written for speed on a CPU (the fit runs them thousands of times on
every pixel and latent):

* `upsample_aligned`: bicubic upsampling by an exact power of two (PyTorch's bicubic, A = -0.75,
  half-pixel centres, edges repeated), as two separable passes of 5 taps whose weights depend on
  the output's phase; then cropped to the image size.  Each pass is one small matrix product, about
  seven times faster, forward and backward, than F.interpolate; it agrees with
  F.interpolate(scale_factor=2**k) to float rounding.  Its backward pass (and `neighbourhood`'s)
  is written out: each shifted window's gradient is added into one buffer, where autograd would
  fill a zeroed plane per window.
* `pointwise_mlp`: a 1x1 MLP (ReLU between layers) over (channels, pixels) in chunks of pixels,
  so that every activation stays in the cache; its backward pass recomputes the activations chunk
  by chunk instead of keeping them.  Two to three times faster, forward and backward, than
  F.linear over (pixels, channels), and the memory it keeps is its input alone.
  `pointwise_mse`: the squared error of that MLP's output against the image, with its gradients
  computed in the same pass over chunks (what the fit needs: nothing is kept or recomputed).
* `plane_bits`: the ARM and the Laplace bits (laplace.bits) of every latent of a plane, all its
  passes, in one pass over chunks of latents, computing the gradients of their sum on the way.
  The coarser plane's part of the ARM's first layer is computed once per parent (the four latents
  of a 2x2 block share it), and the context's gradients are added back window by window.

Each is checked against the plain PyTorch it replaces (tests/test_fitted_kernels.py).  The last
three (and the written-out backward passes) made an iteration of a 768x512 fit 10 to 15% faster
than the per-pass kernels before them (docs/fitted.md, "Faster kernels").
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from . import context, laplace
from .header import SCALE_LEVELS
from .decoder import bicubic_phases
from .laplace import B_MIN, PROB_FLOOR, STEP

CHUNK = 16384  # pixels per chunk: 16 channels of float32 take 1 MiB


@functools.lru_cache(maxsize=16)
def _phases(factor: int) -> torch.Tensor:
    """(factor, 5): output sample factor*m + r is the dot product of row r with source samples
    m-2 .. m+2 (the source padded by 2 at each end): the numpy decoder's weights."""
    return torch.from_numpy(bicubic_phases(factor))


def _upsample(p: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
    h, w = p.shape
    k = _phases(factor).to(p.dtype)
    x = F.pad(p[None, None], (2, 2, 2, 2), mode="replicate")[0, 0]  # (h+4, w+4)
    x = k @ torch.stack([x[:, j:j + w] for j in range(5)]).reshape(5, -1)  # (factor, (h+4) w)
    x = x.reshape(factor, h + 4, w).permute(1, 2, 0).reshape(h + 4, w * factor)[:, :size[1]]
    x = k @ torch.stack([x[j:j + h] for j in range(5)]).reshape(5, -1)  # (factor, h W)
    return x.reshape(factor, h, size[1]).permute(1, 0, 2).reshape(h * factor, size[1])[:size[0]]


def _fold_replicated(g: torch.Tensor, r: int) -> torch.Tensor:
    """The adjoint of padding by r with edges repeated: g (h+2r, w+2r) -> (h, w), the border's
    gradients added into the edge values they copy (g is changed)."""
    if r:
        g[r] += g[:r].sum(0)
        g[-r - 1] += g[-r:].sum(0)
        g[:, r] += g[:, :r].sum(1)
        g[:, -r - 1] += g[:, -r:].sum(1)
    return g[r:g.shape[0] - r, r:g.shape[1] - r]


class _Upsample(torch.autograd.Function):
    """upsample_aligned with its adjoint written out: the transposed phase products, each shifted
    window's gradient added into one buffer (autograd would fill a zeroed plane per window)."""

    @staticmethod
    def forward(ctx, p, factor, size):
        ctx.factor, ctx.size, ctx.shape = factor, size, p.shape
        return _upsample(p, factor, size)

    @staticmethod
    def backward(ctx, g):
        (h, w), f, (hh, ww) = ctx.shape, ctx.factor, ctx.size
        kt = _phases(f).to(g.dtype).t()  # (5, factor)
        rows = g.new_zeros(h * f, ww)
        rows[:hh] = g
        gs = (kt @ rows.reshape(h, f, ww).permute(1, 0, 2).reshape(f, -1)).reshape(5, h, ww)
        gx = g.new_zeros(h + 4, ww)
        for j in range(5):
            gx[j:j + h] += gs[j]
        cols = g.new_zeros(h + 4, w * f)
        cols[:, :ww] = gx
        gs = (kt @ cols.reshape(h + 4, w, f).permute(2, 0, 1).reshape(f, -1)).reshape(5, h + 4, w)
        gp = g.new_zeros(h + 4, w + 4)
        for j in range(5):
            gp[:, j:j + w] += gs[j]
        return _fold_replicated(gp, 2).contiguous(), None, None


def upsample_aligned(p: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
    """Plane p (h, w) -> (1, 1, *size): bicubic by `factor` (a power of two), cropped to `size`
    (at most h*factor x w*factor).  Columns, then rows: each a product of the (factor, 5) phase
    weights with the 5 shifted copies of the padded input, the phases then interleaved."""
    if factor == 1:
        return p[None, None, :size[0], :size[1]]
    if torch.is_grad_enabled() and p.requires_grad:
        return _Upsample.apply(p, factor, tuple(size))[None, None]
    return _upsample(p, factor, size)[None, None]


class _Neighbourhood(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, kernel):
        ctx.kernel = kernel
        r, (h, w) = kernel // 2, u.shape
        f = F.pad(u[None, None], (r, r, r, r), mode="replicate")[0, 0]
        return torch.stack([f[i:i + h, j:j + w] for i in range(kernel) for j in range(kernel)])

    @staticmethod
    def backward(ctx, g):
        kernel = ctx.kernel
        r, (h, w) = kernel // 2, g.shape[1:]
        gf = g.new_zeros(h + 2 * r, w + 2 * r)
        for n, (i, j) in enumerate((i, j) for i in range(kernel) for j in range(kernel)):
            gf[i:i + h, j:j + w] += g[n]
        return _fold_replicated(gf, r).contiguous(), None


def neighbourhood(u: torch.Tensor, kernel: int) -> torch.Tensor:
    """Plane u (h, w) -> (kernel**2, h, w): the kernel x kernel neighbourhood of each value, row by
    row (edges repeated), as a kernel x kernel convolution reads it."""
    if kernel == 1:
        return u[None]
    return _Neighbourhood.apply(u, kernel)


def _forward(x: torch.Tensor, ws, bs) -> list[torch.Tensor]:
    acts = [x]
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = torch.addmm(b[:, None], w, x)
        if i < len(ws) - 1:
            x = x.clamp_(min=0)
        acts.append(x)
    return acts


def _backward(acts: list[torch.Tensor], g: torch.Tensor, ws, gw: list[torch.Tensor], gb: list[torch.Tensor],
              first: int = 0) -> torch.Tensor:
    """Back through the layers whose activations `_forward` gave: add the weights' and biases'
    gradients into gw and gb, return the input's; from layer `first` down only (with first = 1,
    the gradient at the first layer's output, before its ReLU)."""
    for i in range(len(ws) - 1, first - 1, -1):
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


class _PointwiseMSE(torch.autograd.Function):
    """The mean squared error of the MLP's output over x against `target`, its gradients computed
    in the forward pass chunk by chunk while the chunk's activations are in the cache (the fit
    needs the error alone: no output is kept, nothing is recomputed)."""

    @staticmethod
    def forward(ctx, x, target, *params):
        ws, bs = params[0::2], params[1::2]
        gw = [torch.zeros_like(w) for w in ws]
        gb = [torch.zeros_like(b) for b in bs]
        gx = torch.empty_like(x)
        total = x.new_zeros((), dtype=torch.float64)
        scale = 2.0 / target.numel()
        for s in range(0, x.shape[1], CHUNK):
            acts = _forward(x[:, s:s + CHUNK], ws, bs)
            d = acts[-1] - target[:, s:s + CHUNK]
            total += (d * d).sum(dtype=torch.float64)
            gx[:, s:s + CHUNK] = _backward(acts, d.mul_(scale), ws, gw, gb)
        ctx.save_for_backward(gx, *_interleave(gw, gb))
        return (total / target.numel()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (ctx.saved_tensors[0] * grad, None, *(g * grad for g in ctx.saved_tensors[1:]))


def pointwise_mse(x: torch.Tensor, target: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    """mean((pointwise_mlp(x, weights, biases) - target) ** 2), target (O, N), in one pass over
    chunks of pixels."""
    params = _interleave(weights, biases)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *params)):
        return _PointwiseMSE.apply(x.contiguous(), target.contiguous(), *params)
    with torch.no_grad():
        total = x.new_zeros((), dtype=torch.float64)
        for s in range(0, x.shape[1], CHUNK):
            d = _forward(x[:, s:s + CHUNK], weights, biases)[-1] - target[:, s:s + CHUNK]
            total += (d * d).sum(dtype=torch.float64)
        return (total / target.numel()).to(x.dtype)


def _laplace_bits_grad(q: torch.Tensor, mu: torch.Tensor, t: torch.Tensor):
    """laplace.bits(q, mu, t) and its gradients with respect to q, mu and t, computed together
    (in place wherever a temporary is not needed again: the rate's job runs this on every latent)."""
    ib = t.clamp(0, SCALE_LEVELS - 1).mul_(-STEP).add_(-math.log(B_MIN)).exp_()  # 1 / the scale
    d = q - mu
    s = torch.sign(d)
    hi = d.abs_().neg_().add_(0.5)  # the bin's edges from the mean, nearer side first: 0.5 - |d|
    lo = hi - 1.0  # -0.5 - |d| < 0
    e_hi = hi.abs().mul_(ib).neg_().exp_()
    e_lo = (lo * ib).exp_()
    p = torch.where(hi < 0, e_hi, 2 - e_hi).sub_(e_lo).mul_(0.5)  # the bin's mass
    bits = p.clamp_min(PROB_FLOOR).log2_().neg_()
    g = torch.where(p >= PROB_FLOOR, p, math.inf).mul_(-math.log(2)).reciprocal_()  # d bits / d p, 0 below the floor
    g.mul_(ib).mul_(0.5)
    g_v = (e_hi - e_lo).mul_(g)  # through the mass's distance from the mean
    g_t = (lo * e_lo).sub_(hi * e_hi).mul_(g).mul_(STEP).mul_((t >= 0) & (t <= SCALE_LEVELS - 1))
    g_q = s * g_v
    return bits, g_q.neg(), g_q, g_t


def laplace_mlp_bits(f: torch.Tensor, q: torch.Tensor, weights: list[torch.Tensor],
                     biases: list[torch.Tensor]) -> torch.Tensor:
    """sum(laplace.bits(q, mean, scale)) with (mean, scale) = the MLP of features f (F, n), chunk by
    chunk, without gradients (fit.finalise; the fit's gradients come from plane_bits)."""
    with torch.no_grad():
        out = _output(f, weights, biases)
        return laplace.bits(q, out[0], out[1]).sum(dtype=torch.float64).to(q.dtype)


class _PlaneBits(torch.autograd.Function):
    """The bits of every latent of plane y (all its passes), its context read from y and from the
    coarser plane, with their gradients computed in the forward pass.

    The four latents of a 2x2 block share their parent, and so the coarser plane's 3x3 values
    around it: the first layer's product with those values is computed once per parent, on the
    coarser plane's grid (a quarter of the work), and each pass adds it to the product with its
    visible neighbours.  The neighbours are gathered once per pass from the padded plane, and their
    gradients added back into a padded gradient plane window by window (what autograd does through
    phase_features' slices and stack, without a zero-filled plane for every window)."""

    @staticmethod
    def forward(ctx, y, coarse, coarse_weight, *params):
        h, w = y.shape
        n_layers = len(params) // len(context.PHASES) // 2
        p = F.pad(y, (1, 1, 1, 1))
        gp = torch.zeros_like(p)
        units = coarse_weight.shape[0]
        has_coarse = coarse.numel() > 0
        if has_coarse:
            hc, wc = coarse.shape
            pc = F.pad(coarse, (1, 1, 1, 1))
            near = torch.stack([pc[at] for at in context.coarse_windows(hc, wc)]).reshape(len(context.COARSE), -1)
            shared = (coarse_weight @ near).reshape(units, hc, wc)  # the coarse part of the first layer
            g_shared = torch.zeros_like(shared)
        total = y.new_zeros((), dtype=torch.float64)
        grads = []
        for phase in range(len(context.PHASES)):
            mine = params[phase * 2 * n_layers:(phase + 1) * 2 * n_layers]
            ws, bs = list(mine[0::2]), list(mine[1::2])
            _, _, ni, nj = context.phase_positions(h, w, phase)
            neighbours, own = context.windows(h, w, phase)
            same = [at for at, v in zip(neighbours, context.available(phase)) if v]
            if ni * nj == 0:
                grads += [torch.zeros_like(t) for t in mine]
                continue
            n = ni * nj
            f = torch.stack([p[r, c] for r, c in same]).reshape(len(same), -1) if same else y.new_zeros(0, n)
            q = p[own].reshape(-1)
            base = shared[:, :ni, :nj].reshape(units, -1) if has_coarse else None
            gw = [torch.zeros_like(t) for t in ws]
            gb = [torch.zeros_like(t) for t in bs]
            gf, gq = torch.empty_like(f), torch.empty_like(q)
            g_base = y.new_empty(units, n) if has_coarse else None
            for s in range(0, n, CHUNK):
                e = min(n, s + CHUNK)
                x = bs[0][:, None] + base[:, s:e] if has_coarse else bs[0][:, None].expand(units, e - s)
                x = torch.addmm(x, ws[0], f[:, s:e]) if same else x
                acts = [x.clamp(min=0)]
                acts += _forward(acts[0], ws[1:], bs[1:])[1:]
                out = acts[-1]
                bits, gq[s:e], g_mu, g_t = _laplace_bits_grad(q[s:e], out[0], out[1])
                total += bits.sum(dtype=torch.float64)
                g1 = _backward([x] + acts, torch.stack([g_mu, g_t]), [None] + ws[1:], [None] + gw[1:], [None] + gb[1:], first=1)
                gb[0] += g1.sum(1)
                if same:
                    gw[0].addmm_(g1, f[:, s:e].t())
                    gf[:, s:e] = ws[0].t() @ g1
                if has_coarse:
                    g_base[:, s:e] = g1
            gf = gf.reshape(len(same), ni, nj)
            for i, (r, c) in enumerate(same):
                gp[r, c] += gf[i]
            gp[own] += gq.reshape(ni, nj)
            if has_coarse:
                g_shared[:, :ni, :nj] += g_base.reshape(units, ni, nj)
            grads += _interleave(gw, gb)
        if has_coarse:
            g2 = g_shared.reshape(units, -1)
            g_coarse_weight = g2 @ near.t()
            g_near = (coarse_weight.t() @ g2).reshape(len(context.COARSE), hc, wc)
            gpc = torch.zeros_like(pc)
            for i, (r, c) in enumerate(context.coarse_windows(hc, wc)):
                gpc[r, c] += g_near[i]
            g_coarse = gpc[1:-1, 1:-1]
        else:
            g_coarse, g_coarse_weight = torch.zeros_like(coarse), torch.zeros_like(coarse_weight)
        ctx.save_for_backward(gp[1:-1, 1:-1], g_coarse, g_coarse_weight, *grads)
        return total.to(y.dtype)

    @staticmethod
    def backward(ctx, grad):
        return tuple(g * grad for g in ctx.saved_tensors)


def plane_bits(y: torch.Tensor, coarse: torch.Tensor | None, layers: list[tuple[list[torch.Tensor], list[torch.Tensor]]]) -> torch.Tensor:
    """The total bits of plane y (h, w) under the ARM, its coarser plane `coarse` (None for the
    coarsest); layers[phase] = (weights, biases) of the ARM as that pass runs it (Arm.pass_layers:
    the first layer's columns are the pass' visible neighbours, then the coarse values).  The same
    as the sum of laplace_mlp_bits over the passes of context.phase_features, with the gradients of
    every input when any needs them."""
    c = coarse if coarse is not None else y.new_zeros(0, 0)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (y, c, *[t for ws, bs in layers for t in (*ws, *bs)])):
        # Split each pass' first layer into its neighbours' columns and the coarse columns (the
        # same weights in every pass: one tensor, its gradient summed over the passes).
        n_coarse = len(context.COARSE)
        coarse_weight = layers[0][0][0][:, -n_coarse:]
        params = []
        for ws, bs in layers:
            params += _interleave([ws[0][:, :-n_coarse], *ws[1:]], bs)
        return _PlaneBits.apply(y.contiguous(), c.contiguous(), coarse_weight, *params)
    with torch.no_grad():
        total = y.new_zeros((), dtype=torch.float64)
        for phase, (ws, bs) in enumerate(layers):
            f = context.phase_features(y, coarse, phase, 0, 1, compact=True)
            total += laplace_mlp_bits(f.t(), context.phase_values(y, phase).reshape(-1), ws, bs).double()
        return total.to(y.dtype)

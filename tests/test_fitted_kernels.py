"""The fitted codec's fast building blocks (aecli/codec/fitted/kernels.py) against the plain PyTorch
they replace: same values, same gradients, across chunk boundaries."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aecli.codec.fitted import fit as fitmod
from aecli.codec.fitted import header, kernels, laplace, tables
from aecli.codec.fitted.nets import Synthesis


@pytest.mark.parametrize("factor", [2, 4, 8, 64])
def test_upsample_matches_bicubic(factor):
    torch.manual_seed(0)
    p = torch.randn(5, 7, dtype=torch.float64)
    ref = F.interpolate(p[None, None], scale_factor=factor, mode="bicubic", align_corners=False)
    got = kernels.upsample_aligned(p, factor, (5 * factor, 7 * factor))
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-12)
    # a size that 2**k does not divide: the top-left crop of the same upsampling
    got = kernels.upsample_aligned(p, factor, (5 * factor - 3, 7 * factor - factor + 1))
    assert torch.allclose(got, ref[..., :5 * factor - 3, :7 * factor - factor + 1], atol=1e-12)


@pytest.mark.parametrize("factor, size", [(2, (6, 8)), (4, (11, 14)), (8, (17, 30))])
def test_upsample_gradient(factor, size):
    """The written-out backward pass (cropped sizes included) against finite differences."""
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: kernels.upsample_aligned(t, factor, size), (p,))


def _reference_mlp(x, ws, bs):
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = torch.addmm(b[:, None], w, torch.relu(x) if i else x)
    return x


def _mlp(dims, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    ws = [(torch.randn(b, a, generator=g, dtype=dtype) * 0.5).requires_grad_() for a, b in zip(dims[:-1], dims[1:])]
    bs = [(torch.randn(b, generator=g, dtype=dtype) * 0.1).requires_grad_() for b in dims[1:]]
    return ws, bs


@pytest.mark.parametrize("n", [10, kernels.CHUNK + 7])
def test_pointwise_mlp_values_and_gradients(n):
    ws, bs = _mlp([7, 16, 16, 3])
    x = torch.randn(7, n, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, n, dtype=torch.float64)
    got = kernels.pointwise_mlp(x, ws, bs)
    ref = _reference_mlp(x, ws, bs)
    assert torch.allclose(got, ref, atol=1e-12)
    g_got = torch.autograd.grad(((got - target) ** 2).sum(), [x, *ws, *bs])
    g_ref = torch.autograd.grad(((ref - target) ** 2).sum(), [x, *ws, *bs])
    for a, b in zip(g_got, g_ref):
        assert torch.allclose(a, b, atol=1e-9)
    with torch.no_grad():  # the decoder's path: chunked, no graph
        assert torch.allclose(kernels.pointwise_mlp(x, ws, bs), ref, atol=1e-12)


def test_laplace_gradients_match_autograd():
    g = torch.Generator().manual_seed(2)
    n = 5000
    q = torch.round(torch.randn(n, generator=g, dtype=torch.float64) * 4) + torch.rand(n, generator=g, dtype=torch.float64) * 0.3
    mu = torch.randn(n, generator=g, dtype=torch.float64) * 4
    t = torch.rand(n, generator=g, dtype=torch.float64) * 80 - 8  # past both ends of the scale levels
    q[:3] = mu[:3]  # q exactly at the mean
    leaves = [v.clone().requires_grad_() for v in (q, mu, t)]
    bits = laplace.bits(*leaves)
    want = torch.autograd.grad(bits.sum(), leaves)
    got = kernels._laplace_bits_grad(q, mu, t)
    assert torch.allclose(got[0], bits, atol=1e-9)
    for a, b in zip(got[1:], want):
        assert torch.allclose(a, b, atol=1e-7)


def _reference_plane_bits(arm, y, coarse, level):
    """The bits of plane y through plain autograd: phase_features, the ARM and laplace.bits."""
    from aecli.codec.fitted import context

    total = 0
    for p in range(len(context.PHASES)):
        f = context.phase_features(y, coarse, p, level, 3, compact=True)
        total = total + laplace.bits(context.phase_values(y, p).reshape(-1), *arm(f, p, level)).sum()
    return total


@pytest.mark.parametrize("shape, coarse", [((9, 11), True), ((1, 1), True), ((7, 6), False),
                                           ((258, 259), True)])  # a pass of more than CHUNK latents
def test_plane_bits_values_and_gradients(shape, coarse):
    """kernels.plane_bits (the coarse part of the first layer once per parent, the context's
    gradients added back by hand) gives the bits and gradients plain autograd gives."""
    from aecli.codec.fitted.nets import Arm

    assert shape[0] * shape[1] // 4 > kernels.CHUNK or shape[0] < 100
    torch.manual_seed(6)
    arm = Arm(header.Structure(levels=3)).double()
    with torch.no_grad():
        for layer in arm.layers:
            layer.weight.mul_(3)
    y = (torch.randn(*shape, dtype=torch.float64) * 3).requires_grad_()
    c = (torch.randn((shape[0] + 1) // 2, (shape[1] + 1) // 2, dtype=torch.float64) * 3).requires_grad_() if coarse else None
    level = 1 if coarse else 2
    leaves = [y] + ([c] if coarse else []) + list(arm.parameters())
    got = arm.plane_bits(y, c, level)
    ref = _reference_plane_bits(arm, y, c, level)
    assert torch.allclose(got, ref, rtol=1e-12)
    g_got = torch.autograd.grad(got * 3.0, leaves, allow_unused=True)
    g_ref = torch.autograd.grad(ref * 3.0, leaves, allow_unused=True)
    for a, b in zip(g_got, g_ref):
        if b is None:  # columns or one-hots this plane never uses
            assert a is None or torch.all(a == 0)
        else:
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        assert torch.allclose(arm.plane_bits(y, c, level), ref, rtol=1e-12)


@pytest.mark.parametrize("n", [10, kernels.CHUNK + 7])
def test_pointwise_mse_values_and_gradients(n):
    ws, bs = _mlp([15, 16, 16, 3])
    x = torch.randn(15, n, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, n, dtype=torch.float64)
    got = kernels.pointwise_mse(x, target, ws, bs)
    ref = ((_reference_mlp(x, ws, bs) - target) ** 2).mean()
    assert torch.allclose(got, ref, rtol=1e-12)
    g_got = torch.autograd.grad(got * 5.0, [x, *ws, *bs])
    g_ref = torch.autograd.grad(ref * 5.0, [x, *ws, *bs])
    for a, b in zip(g_got, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(kernels.pointwise_mse(x, target, ws, bs), ref, rtol=1e-12)


@pytest.mark.parametrize("kernel", [3, 5])
def test_neighbourhood_values_and_gradient(kernel):
    torch.manual_seed(7)
    u = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    r = kernel // 2
    padded = F.pad(u[None, None], (r, r, r, r), mode="replicate")[0, 0]
    ref = torch.stack([padded[i:i + 4, j:j + 6] for i in range(kernel) for j in range(kernel)])
    assert torch.equal(kernels.neighbourhood(u, kernel), ref)
    assert torch.autograd.gradcheck(lambda t: kernels.neighbourhood(t, kernel), (u,))


def test_synthesis_versions():
    """Version 2 upsamples by exactly 2**k and crops; version 1 straight to the image size: the
    same when 2**k divides the size, not otherwise."""
    torch.manual_seed(0)
    s2 = header.Structure(levels=3, version=3)
    s1 = header.Structure(levels=3, version=1)
    a, b = Synthesis(s2), Synthesis(s1)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        planes = [torch.randn(h, w) for h, w in header.plane_sizes(16, 12, 3)]
        assert torch.allclose(a(planes, (12, 16)), b(planes, (12, 16)), atol=1e-5)
        planes = [torch.randn(h, w) for h, w in header.plane_sizes(15, 11, 3)]
        assert not torch.allclose(a(planes, (11, 15)), b(planes, (11, 15)), atol=1e-3)


def test_header_versions():
    n = len(header.Structure().tensor_shapes())
    s = header.Structure(exponents=(8,) * n, tables=(5,) * n)
    assert s.pack()[0] == header.VERSION == 4
    for v in (1, 2, 3):
        old = header.Structure(exponents=(8,) * n, tables=(5,) * n, version=v)
        assert header.unpack(old.pack()) == old
    assert [header.mean_steps(v) for v in (1, 2, 3, 4)] == [4, 4, 16, 16]
    assert [header.Structure(version=v).fine_kernel for v in (1, 2, 3, 4)] == [1, 1, 1, 3]
    raw = bytearray(s.pack())
    for bad in (0, 5):
        raw[0] = bad
        with pytest.raises(header.HeaderError, match=f"version {bad}"):
            header.unpack(bytes(raw))


def test_mean_tables():
    """tables(n): one table per (scale, mean step); the zero-mean tables (the parameters') are the
    same in every set, and a table's mean is its step: its pmf is the Laplace's, shifted."""
    p4, o4 = tables.tables(4)
    p16, o16 = tables.tables(16)
    assert len(p4) == 4 * header.SCALE_LEVELS and len(p16) == 16 * header.SCALE_LEVELS
    for scale in (0, 20, 63):
        a, b = tables.table_index(scale, 0, 4), tables.table_index(scale, 0, 16)
        assert np.array_equal(p4[a], p16[b]) and o4[a] == o16[b]
        assert np.array_equal(p4[tables.table_index(scale, -1, 4)], p16[tables.table_index(scale, -4, 16)])
    i = tables.table_index(20, 3, 16)  # mean 3/16: symbol 0 more likely than 1, 1 than -1
    pmf, lo = p16[i], int(o16[i])
    assert pmf[-lo] > pmf[1 - lo] > pmf[-1 - lo]


@pytest.mark.parametrize("version, steps", [(2, 4), (3, 16)])
def test_int_arm_mean_resolution(version, steps):
    """The integer ARM gives the mean as centre + fraction / steps, fraction in -steps/2..steps/2-1,
    within half a step of the mean the same network gives in float (plus the fixed point's error)."""
    from aecli.codec.fitted.intarm import IntArm
    from aecli.codec.fitted.nets import Arm, quantise

    s = header.Structure(levels=3, version=version)
    torch.manual_seed(5)
    arm = Arm(s)
    with torch.no_grad():
        arm.layers[-1].weight.mul_(30)
    shapes = s.tensor_shapes()[:s.arm_tensors()]
    ints = [quantise(t, 8) for t in [p for layer in arm.layers for p in (layer.weight, layer.bias)]]
    assert [q.shape for q in ints] == shapes
    exps = (8,) * len(ints)
    int_arm = IntArm(ints, exps, s)
    float_arm = Arm(s).double()
    with torch.no_grad():
        for layer, (w, b) in zip(float_arm.layers, zip(ints[0::2], ints[1::2])):
            layer.weight.copy_(torch.from_numpy(w * 2.0**-8))
            layer.bias.copy_(torch.from_numpy(b * 2.0**-8))
    feats = torch.randint(-6, 7, (500, 4 + 9)).double()  # compact features of phase 1: 4 neighbours, 9 coarse
    centre, fraction, _ = int_arm(feats.t().numpy(), 1, 0)
    mu, _ = float_arm(feats, 1, 0)
    assert fraction.min() >= -steps // 2 and fraction.max() <= steps // 2 - 1
    mean = centre + fraction / steps
    err = np.abs(mean - mu.detach().numpy())
    assert err.max() <= 0.5 / steps + 1e-2
    assert len(np.unique(fraction)) > steps // 2  # the finer steps are used


def test_fit_same_with_and_without_the_pool(monkeypatch):
    """The two loss jobs give the same fit whether they run at once (two threads) or in turn."""
    x = torch.rand(3, 24, 20, generator=torch.Generator().manual_seed(3))
    s = header.Structure(levels=3)
    runs = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            runs.append(fitmod.fit(x, 0.002, s, 12))
        finally:
            torch.set_num_threads(before)
    a, b = runs
    for p, q in zip(a.planes, b.planes):
        assert np.array_equal(p, q)
    for p, q in zip(a.ints, b.ints):
        assert np.array_equal(p, q)


def test_laplace_mlp_bits_without_gradients():
    ws, bs = _mlp([9, 16, 2])
    f = torch.randn(9, kernels.CHUNK + 3, dtype=torch.float64)
    q = torch.randn(kernels.CHUNK + 3, dtype=torch.float64)
    with torch.no_grad():
        got = kernels.laplace_mlp_bits(f, q, ws, bs)
    out = _reference_mlp(f, ws, bs)
    assert not got.requires_grad
    assert torch.allclose(got, laplace.bits(q, out[0], out[1]).sum(), rtol=1e-12)


def test_context_reads_only_decoded_latents():
    """The compact features of each pass are the same from the whole plane and from the plane as
    the decoder holds it then (later phases still zero): a latent's context is decoded before it."""
    from aecli.codec.fitted import context

    torch.manual_seed(3)
    y, coarse = torch.randn(9, 11), torch.randn(5, 6)
    seen = []
    for p in range(len(context.PHASES)):
        partial = y.clone()
        for later in range(p, len(context.PHASES)):
            a, b = context.PHASES[later]
            partial[a::2, b::2] = 0
        whole = context.phase_features(y, coarse, p, 0, 3, compact=True)
        assert torch.equal(whole, context.phase_features(partial, coarse, p, 0, 3, compact=True))
        seen.append(sum(context.available(p)))
        assert whole.shape[1] == seen[-1] + 9
    assert seen == [0, 4, 4, 8]


def test_synthesis_reads_the_finest_3x3():
    """Structure version 4: the synthesis' first layer reads each pixel's 3x3 neighbourhood in the
    finest plane (edges repeated), as a 3x3 convolution would, beside the coarser planes upsampled;
    it starts as version 3's synthesis (the eight outer taps at 0)."""
    torch.manual_seed(4)
    s = header.Structure(levels=3)
    assert s.synth_dims()[0] == 9 + 2
    net = Synthesis(s)
    w0 = net.mlp[0].weight[:, :, 0, 0]
    assert torch.all(w0[:, [0, 1, 2, 3, 5, 6, 7, 8]] == 0) and torch.all(w0[:, 4] != 0)
    planes = [torch.randn(h, w) for h, w in header.plane_sizes(13, 10, 3)]
    with torch.no_grad():
        w0.normal_()  # every tap in use
        b0 = net.mlp[0].bias
        fine = F.conv2d(F.pad(planes[0][None, None], (1, 1, 1, 1), mode="replicate"), w0[:, :9].reshape(-1, 1, 3, 3))
        up = torch.cat([kernels.upsample_aligned(p, 1 << k, (10, 13)) for k, p in enumerate(planes) if k], 1)
        h = F.relu(fine + F.conv2d(up, w0[:, 9:, None, None]) + b0[None, :, None, None])
        for i, layer in enumerate(net.mlp[1:]):
            h = layer(h)
            h = F.relu(h) if i < len(net.mlp) - 2 else h
        assert torch.allclose(net(planes, (10, 13)), h, atol=1e-5)

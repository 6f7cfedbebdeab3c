"""Choosing the latents' integers after a fit (aecli/codec/fitted/rounding.py): what a move of one
group brings is its own, the search never raises the cost, and what it chooses is coded exactly."""

import numpy as np
import pytest
import torch

from aecli.codec.fitted import codec, fit, rounding
from aecli.images.image import Image

from conftest import photo_like

LAM = codec.LAMBDAS[2]


@pytest.fixture(scope="module")
def fitted():
    """A short fit of a small photo-like image (12 iterations): latents still far from settled,
    so that many of them gain from moving."""
    torch.manual_seed(0)
    px = photo_like(27, 38, np.random.default_rng(3))
    x = codec._target(Image(px, None, "RGB", 8))
    m = fit._Model(x, codec.structure_for("RGB"))
    r = fit.Recipe()
    opt = torch.optim.Adam([{"params": m.latents, "lr": r.latent_lr, "base": r.latent_lr},
                            {"params": [*m.arm.parameters(), *m.synth.parameters()], "lr": r.lr, "base": r.lr}])
    fit._descend(m, opt, LAM, r, 12, 0.0, None, None, None)
    return m


def _cost(m, planes) -> float:
    """distortion (clamped synthesis) + LAM * bits per pixel: what the search lowers."""
    with torch.no_grad():
        d = float(rounding.error_map(m.synth, planes, m.x).sum(dtype=torch.float64)) / m.x.numel()
        bits = sum(float(rounding.bit_map(m.arm, planes, k).sum(dtype=torch.float64)) for k in range(len(planes)))
    return d + LAM * bits / m.pixels


@pytest.mark.parametrize("level", [0, 1, 2])
def test_each_moves_gain_is_its_own(fitted, level):
    """The gain group_gains gives a move, with its whole group moved, is the change of the cost
    when that move alone is made: the group's latents reach no pixel or bits in common."""
    m = fitted
    ys = [y.detach() for y in m.latents]
    base = [torch.round(y) for y in ys]
    step = rounding.spacing(level)
    a, b = 1, 2
    wr, wd = LAM / m.pixels, 1.0 / m.x.numel()
    maps = rounding._maps(m.arm, m.synth, m.x, base, level)
    moved = list(base)
    moved[level] = base[level].clone()
    moved[level][a::step, b::step] += 1  # every latent of the group one up
    with torch.no_grad():
        gains, _ = rounding.group_gains(m.arm, m.synth, m.x, moved, level, a, b, maps, wr, wd)
    start = _cost(m, base)
    rows, cols = gains.shape
    assert rows * cols >= 2  # more than one move, or nothing to tell apart
    # the corners of the group's grid and a member inside it: edges and neighbours both covered
    members = {(0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1), (rows // 2, cols // 2)}
    for i, j in sorted(members):
        alone = list(base)
        alone[level] = base[level].clone()
        alone[level][a + i * step, b + j * step] += 1
        change = _cost(m, alone) - start
        assert change == pytest.approx(float(gains[i, j]), rel=1e-4, abs=1e-9)


def test_search_lowers_the_cost(fitted):
    """improve never raises the cost, moves some latents of the planes asked for only, and each
    moved latent is the other integer next to its fitted value or one nearer 0 than its rounding."""
    m = fitted
    ys = [y.detach() for y in m.latents]
    nearest = [torch.round(y) for y in ys]
    planes = [p.clone() for p in nearest]
    moved = rounding.improve(m.arm, m.synth, m.x, ys, planes, LAM, [0, 1], sweeps=1)
    assert moved > 0
    assert _cost(m, planes) < _cost(m, nearest)
    for k, (p, q, y) in enumerate(zip(planes, nearest, ys)):
        changed = p != q
        if k > 1:
            assert not changed.any()
        other = q + torch.sign(y - q)
        towards_zero = q - torch.sign(q)
        assert bool(((p == other) | (p == towards_zero))[changed].all())
    assert sum(int((p != q).sum()) for p, q in zip(planes, nearest)) <= moved


def test_fitted_file_holds_the_chosen_integers(monkeypatch):
    """A fit finalised with the search codes the integers it chose (not the nearest ones): the file
    decodes to them exactly."""
    from test_fitted import _image, _latents

    caught = {}
    real = fit.finalise

    def keep(m, *args, **kwargs):
        caught["nearest"] = [torch.round(y.detach()).to(torch.int64).numpy() for y in m.latents]
        caught["f"] = f = real(m, *args, **kwargs)
        return f

    monkeypatch.setattr(fit, "finalise", keep)
    monkeypatch.setattr(fit, "ROUNDING_FROM", 0)  # a fit this short would skip the search
    img = _image(24, 30, "RGB", seed=5)
    data = codec.compress(img, 3, iterations=8).data
    assert any(not np.array_equal(a, b) for a, b in zip(caught["f"].planes, caught["nearest"]))
    for a, b in zip(caught["f"].planes, _latents(data)):
        assert np.array_equal(a, b)


def test_no_search_after_the_deadline(fitted):
    """With its deadline passed (a time limit spent), the search moves nothing."""
    import time

    m = fitted
    ys = [y.detach() for y in m.latents]
    planes = [torch.round(y) for y in ys]
    assert rounding.improve(m.arm, m.synth, m.x, ys, planes, LAM, deadline=time.monotonic() - 1) == 0
    assert all(torch.equal(p, torch.round(y)) for p, y in zip(planes, ys))


@pytest.mark.parametrize("shape,cell,step,a,b", [((7, 10), 1, 3, 0, 2), ((27, 38), 2, 5, 4, 1), ((13, 9), 4, 5, 0, 0),
                                                 ((5, 6), 8, 5, 3, 4), ((1, 1), 1, 3, 2, 2)])
def test_tiles(shape, cell, step, a, b):
    """Each value of a map belongs to the tile of the group member whose cells it lies in (tile 0
    before the first member's), and the tile sums and the expanded tile mask say so."""
    rng = np.random.default_rng(0)
    m = torch.from_numpy(rng.normal(size=shape))

    def tile(i, first):
        return (i // cell - first + step // 2) // step + 1

    sums = rounding._tile_sums(m, cell, step, a, b)
    want = torch.zeros_like(sums)
    for i in range(shape[0]):
        for j in range(shape[1]):
            want[tile(i, a), tile(j, b)] += m[i, j]
    assert torch.allclose(sums, want)
    mask = torch.from_numpy(rng.random(sums.shape) < 0.5)
    big = rounding._expand(mask, shape, cell, step, a, b)
    assert big.shape == shape
    for i in range(shape[0]):
        for j in range(shape[1]):
            assert bool(big[i, j]) == bool(mask[tile(i, a), tile(j, b)])


def test_fit_says_when_it_is_finishing():
    """The progress callback hears the iterations, then once that the integers are being chosen
    (the search takes seconds on a large image, after the bar is full)."""
    seen = []
    x = codec._target(Image(photo_like(16, 20, np.random.default_rng(1)), None, "RGB", 8))
    fit.fit(x, LAM, codec.structure_for("RGB"), 10, report=seen.append)
    assert [p.iteration for p in seen] == [10, 10]
    assert [p.finishing for p in seen] == [False, True]

"""Tiling helpers: a network computed tile by tile, and with a shrinking margin, gives the
untiled result (integer-valued float64 weights and inputs, so every sum is exact)."""

import pytest
import torch
from torch import nn

from aecli import tiling


def _integer_upsampler(seed: int = 0) -> nn.Sequential:
    """Two stride-2 transposed convolutions and a 3x3 convolution with small integer weights, in
    float64: exact arithmetic, so any difference is a wrong reach, not rounding."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(4, 4, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
        nn.Conv2d(4, 2, 3, padding=1),
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-3, 4, p.shape))
    return net


@pytest.mark.parametrize("box", [(0, 9, 0, 11), (2, 5, 3, 8), (0, 1, 10, 11), (4, 9, 0, 2)])
def test_shrinking_gives_the_own_cells_of_the_whole_network(box):
    net = _integer_upsampler()
    x = torch.randint(-5, 6, (1, 3, 9, 11)).double()
    r0, r1, c0, c1 = box
    with torch.no_grad():
        whole = net(x)[..., r0 * 4:r1 * 4, c0 * 4:c1 * 4]
        part = tiling.shrinking(net, x, box)
    assert torch.equal(part, whole)


@pytest.mark.parametrize("tile, halo", [(2, 2), (3, 2), (4, 3)])
def test_tiles_with_own_cells_assemble_the_untiled_result(tile, halo):
    net = _integer_upsampler(1)
    x = torch.randint(-5, 6, (1, 3, 10, 13)).double()
    with torch.no_grad():
        whole = net(x)
        pieces = tiling.tiled(lambda t, box: tiling.shrinking(net, t, box), x, 4, up=True, tile=tile, halo=halo, own=True)
        plain = tiling.tiled(net, x, 4, up=True, tile=tile, halo=halo)
    assert torch.equal(pieces, whole) and torch.equal(plain, whole)


def test_a_halo_too_small_for_the_reach_is_caught_or_differs():
    """With no halo a tile cannot hold what its edge needs: the result differs from the untiled one."""
    net = _integer_upsampler(2)
    x = torch.randint(-5, 6, (1, 3, 8, 8)).double()
    with torch.no_grad():
        pieces = tiling.tiled(lambda t, box: tiling.shrinking(net, t, box), x, 4, up=True, tile=4, halo=0, own=True)
        assert not torch.equal(pieces, net(x))


def test_shrinking_refuses_layers_of_unknown_reach():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="no known reach"):
        tiling.shrinking(nn.Sequential(nn.MaxPool2d(3, 1, 1)), x, (0, 4, 0, 4))
    with pytest.raises(ValueError, match="stride-1"):
        tiling.shrinking(nn.Sequential(nn.Conv2d(3, 3, 3, stride=2, padding=1)), x, (0, 2, 0, 2))

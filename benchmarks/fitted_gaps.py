"""How much a larger ARM context or another synthesis could buy the fitted codec, measured on the
latents of a finished fit (CBSD432 training images only, never an evaluation set).

    python -m benchmarks.fitted_gaps arm --image 100080.jpg --size 256 --iterations 600
    python -m benchmarks.fitted_gaps synth --image 159029.jpg --size 256 --iterations 600

Both fit the crop with the codec's recipe (quality 4), keep its rounded latents fixed, and train
networks from a random start on them alone, 1,500 Adam steps each (learning rate 0.01, cosine):

* `arm`: the bits of the latents under the codec's ARM (the four-pass context of context.py: 0, 4,
  4 and 8 neighbours in the plane, the coarser plane's 3x3) against ARMs of the same size (16, 16)
  that see other contexts: larger windows that the same four passes can decode (5x5 in the plane
  and/or in the coarser plane), and raster-order contexts (every latent above and to the left
  within a radius, with or without the coarser plane's 3x3), which cannot be decoded in a few
  vectorised passes (one latent after another, or one diagonal after another).  The latents are not
  refitted to the context, and the ARMs' own bits are not counted.
* `synth`: the PSNR of the image from the same upsampled latents through the codec's synthesis
  (1x1 layers 16, 16) and through wider or 3x3 variants, with their parameter counts.

Lines of JSON on stdout (one per network), for docs/fitted.md.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aecli.codec.fitted import codec, context, fit, kernels, laplace
from aecli.codec.fitted.nets import Arm

from .common import cbsd432_crop


def _train(net: nn.Module, loss, steps: int = 1500) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = 0.01 * (0.5 * (1 + math.cos(math.pi * i / steps)) * 0.99 + 0.01)
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        return float(loss())


def _mlp(inputs: int, outputs: int, hidden: int = 16) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def raster_features(planes: list[torch.Tensor], radius: int, coarse: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(features (n, F), latents (n,)) per plane: the latents above and to the left within `radius`
    (0 outside the plane), the coarser plane's 3x3 around the parent if `coarse`, a one-hot of the level."""
    out = []
    for k, y in enumerate(planes):
        h, w = y.shape
        p = F.pad(y[None, None], (radius, radius, radius, 0))[0, 0]
        cols = [p[radius + dr:radius + dr + h, radius + dc:radius + dc + w]
                for dr in range(-radius, 1) for dc in range(-radius, radius + 1) if dr < 0 or dc < 0]
        if coarse:
            c = planes[k + 1] if k + 1 < len(planes) else torch.zeros(-(-h // 2), -(-w // 2))
            pc = F.pad(c[None, None], (1, 1, 1, 1))[0, 0]
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    v = pc[1 + dr:1 + dr + c.shape[0], 1 + dc:1 + dc + c.shape[1]]
                    cols.append(v.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w])
        cols += [torch.full((h, w), float(j == k)) for j in range(len(planes))]
        out.append((torch.stack(cols).reshape(len(cols), -1).t(), y.reshape(-1)))
    return out


def four_pass_features(planes: list[torch.Tensor], radius: int, coarse_radius: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(features (n, F), latents (n,)) per plane, decodable in the codec's four passes: the latents
    within `radius` in the plane that an earlier pass decodes (0 otherwise), the coarser plane's
    (2 coarse_radius + 1)^2 values around the parent, one-hots of the phase and the level."""
    out = []
    r, rc = radius, coarse_radius
    for k, y in enumerate(planes):
        h, w = y.shape
        by_parity = torch.tensor([[context.PHASES.index((a, b)) for b in (0, 1)] for a in (0, 1)])
        phase = by_parity[torch.arange(h)[:, None] % 2, torch.arange(w)[None, :] % 2]  # (h, w) pass of each latent
        p = F.pad(y[None, None], (r, r, r, r))[0, 0]
        cols = []
        for dr in range(-r, r + 1):
            for dc in range(-r, r + 1):
                if (dr, dc) == (0, 0):
                    continue
                # visible where the neighbour's pass comes before the latent's (context.available's rule)
                seen = torch.tensor([context.PHASES.index(((a + dr) % 2, (b + dc) % 2)) < i
                                     for i, (a, b) in enumerate(context.PHASES)])[phase]
                cols.append(p[r + dr:r + dr + h, r + dc:r + dc + w] * seen.float())
        c = planes[k + 1] if k + 1 < len(planes) else torch.zeros(-(-h // 2), -(-w // 2))
        pc = F.pad(c[None, None], (rc, rc, rc, rc))[0, 0]
        for dr in range(-rc, rc + 1):
            for dc in range(-rc, rc + 1):
                v = pc[rc + dr:rc + dr + c.shape[0], rc + dc:rc + dc + c.shape[1]]
                cols.append(v.repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w])
        cols += [(phase == i).float() for i in range(len(context.PHASES))]
        cols += [torch.full((h, w), float(j == k)) for j in range(len(planes))]
        out.append((torch.stack(cols).reshape(len(cols), -1).t(), y.reshape(-1)))
    return out


def arm_gap(planes: list[torch.Tensor], s) -> list[dict]:
    arm = Arm(s)

    def ours():
        return sum(laplace.bits(q, *arm(f, p, k)).sum() for k, p, f, q in fit._passes(planes))
    base = _train(arm, ours)
    rows = [{"arm": "codec: four passes + coarser 3x3", "bytes": round(base / 8, 1)}]
    variants = [(f"four passes, radius {r}, coarser {2 * rc + 1}x{2 * rc + 1}", four_pass_features(planes, r, rc))
                for r, rc in ((1, 1), (2, 1), (1, 2), (2, 2))]
    variants += [(f"raster radius {r}" + (" + coarser 3x3" if c else ""), raster_features(planes, r, c))
                 for r, c in ((1, True), (2, True), (3, True), (2, False))]
    for name, feats in variants:
        net = _mlp(feats[0][0].shape[1], 2)
        with torch.no_grad():  # the codec ARM's start: mean 0, a middle scale
            net[-1].weight.mul_(0.1)
            net[-1].bias.copy_(torch.tensor([0.0, 20.0]))

        def bits():
            total = 0
            for x, q in feats:
                o = net(x)
                total = total + laplace.bits(q, o[:, 0], o[:, 1]).sum()
            return total
        b = _train(net, bits)
        rows.append({"arm": name,
                     "inputs": feats[0][0].shape[1], "bytes": round(b / 8, 1), "vs_codec_pct": round(100 * (b / base - 1), 1)})
    return rows


class _Residual3x3(nn.Module):
    def __init__(self, c: int, relu: bool):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(c, c, 3), relu
        with torch.no_grad():
            self.conv.weight.mul_(0.01)
            self.conv.bias.zero_()

    def forward(self, z):
        d = self.conv(F.pad(z, (1, 1, 1, 1), mode="replicate"))
        return z + (F.relu(d) if self.relu else d)


def _pointwise(dims: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers += [nn.Conv2d(a, b, 1)] + ([nn.ReLU()] if i < len(dims) - 2 else [])
    return layers


def synth_gap(planes: list[torch.Tensor], x: torch.Tensor) -> list[dict]:
    h, w = x.shape[1:]
    up = torch.cat([kernels.upsample_aligned(p, 1 << k, (h, w)) for k, p in enumerate(planes)], 1)
    n = len(planes)
    variants = {
        "codec: 1x1 16, 16": lambda: nn.Sequential(*_pointwise([n, 16, 16, 3])),
        "1x1 32, 32": lambda: nn.Sequential(*_pointwise([n, 32, 32, 3])),
        "codec + two residual 3x3 on the 3 colours (ReLU, none)": lambda: nn.Sequential(
            *_pointwise([n, 16, 16, 3]), _Residual3x3(3, True), _Residual3x3(3, False)),
        "first layer 3x3 (16), then 1x1 16": lambda: nn.Sequential(
            nn.Conv2d(n, 16, 3, padding=1, padding_mode="replicate"), nn.ReLU(), *_pointwise([16, 16, 3])),
        "second layer 3x3 (16 to 16)": lambda: nn.Sequential(
            nn.Conv2d(n, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, padding_mode="replicate"), nn.ReLU(), nn.Conv2d(16, 3, 1)),
    }
    rows = []
    for name, make in variants.items():
        torch.manual_seed(0)
        net = make()
        mse = _train(net, lambda: ((net(up)[0] - x) ** 2).mean())
        rows.append({"synthesis": name, "parameters": sum(p.numel() for p in net.parameters()),
                     "psnr": round(10 * math.log10(1 / mse), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("arm", "synth"))
    ap.add_argument("--image", default="100080.jpg", help="a CBSD432 file name")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=600)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    im = cbsd432_crop(a.image, a.size)
    x = torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)
    s = codec.structure_for("RGB")
    f = fit.fit(x, codec.lambda_of(4), s, a.iterations)
    print(json.dumps({"image": a.image, "size": list(im.shape[:2]), "iterations": a.iterations,
                      "bpp": round(f.bpp, 4), "psnr": round(f.psnr, 2)}), flush=True)
    planes = [torch.from_numpy(p).float() for p in f.planes]
    for row in (arm_gap(planes, s) if a.what == "arm" else synth_gap(planes, x)):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

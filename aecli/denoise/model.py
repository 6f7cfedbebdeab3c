"""The denoising network: a U-Net-shaped denoising autoencoder with a residual output.

    input  y (B, C, H, W), values on the 0..1 scale (noisy, need not be clipped)
           + a constant noise-level map sigma/255 (B, 1, H, W) when `noise_map` is on
    head   conv 3x3 (C+1 -> w0)
    down   for each scale but the last: `blocks` residual blocks, keep as skip, conv 2x2 stride 2
    body   `blocks` residual blocks at the coarsest scale
    up     conv-transpose 2x2 stride 2, add the skip, `blocks` residual blocks
    tail   conv 3x3 (w0 -> C) = the predicted noise n(y)
    output y - n(y)

Blind models (`estimator` in the config) put a small noise-level estimator in front:

    estimator  conv 3x3 (C -> e0), relu, conv 3x3 stride 2 (e0 -> e1), relu, `e_layers` x (conv 3x3
               e1 -> e1, relu), conv-transpose 2x2 stride 2 (e1 -> 1), softplus
               = a per-pixel noise-level map on the 0..1 scale (sigma/255 for white noise)

and feed its map to the U-Net when no sigma is given; `strength` multiplies the map (less than 1
keeps more texture, more than 1 smooths more). A given sigma still overrides the estimate.

A residual block is x + conv3x3(relu(conv3x3(x))). Widths (32, 64, 128) with 2 blocks per
scale is the default: about 1.0 M parameters and 0.19 M multiply-adds per pixel, a few times
cheaper than DnCNN on a CPU, with a receptive field of about 97 pixels.

The input side must be a multiple of `align` (2^(scales-1)); the API pads. `receptive_radius`
is an upper bound of how far (in pixels) an output pixel can see, used as the tiling halo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KIND = "unet"
DEFAULT = {"kind": KIND, "in_ch": 3, "widths": [32, 64, 128], "blocks": 2, "noise_map": True}


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _blocks(ch: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(ch) for _ in range(n)])


class NoiseEstimator(nn.Module):
    """A per-pixel noise-level map (B, 1, H, W) >= 0 of a noisy image (B, C, H, W); H, W even."""

    def __init__(self, in_ch: int = 3, widths=(16, 32), layers: int = 2):
        super().__init__()
        e0, e1 = (int(w) for w in widths)
        body = [nn.Conv2d(in_ch, e0, 3, padding=1), nn.ReLU(), nn.Conv2d(e0, e1, 3, stride=2, padding=1), nn.ReLU()]
        for _ in range(int(layers)):
            body += [nn.Conv2d(e1, e1, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.out = nn.ConvTranspose2d(e1, 1, 2, stride=2)
        with torch.no_grad():  # start near a low level (softplus(-3.2) = 0.04, sigma 10) rather than 0.69
            self.out.weight.mul_(0.1)
            self.out.bias.fill_(-3.2)
        self.widths, self.layers = [e0, e1], int(layers)

    @property
    def receptive_radius(self) -> int:
        return 1 + 2 + 2 * (self.layers + 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.out(self.body(y)))


class UNetDenoiser(nn.Module):
    def __init__(self, in_ch: int = 3, widths=(32, 64, 128), blocks: int = 2, noise_map: bool = True,
                 estimator: dict | None = None):
        super().__init__()
        widths = [int(w) for w in widths]
        self.in_ch, self.widths, self.blocks, self.noise_map = int(in_ch), widths, int(blocks), bool(noise_map)
        depth = len(widths)
        self.head = nn.Conv2d(self.in_ch + int(self.noise_map), widths[0], 3, padding=1)
        self.enc = nn.ModuleList([_blocks(widths[i], blocks) for i in range(depth - 1)])
        self.down = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(depth - 1)])
        self.body = _blocks(widths[-1], blocks)
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth - 1)])
        self.dec = nn.ModuleList([_blocks(widths[i], blocks) for i in range(depth - 1)])
        self.tail = nn.Conv2d(widths[0], self.in_ch, 3, padding=1)
        self.estimator = NoiseEstimator(self.in_ch, **estimator) if estimator is not None else None

    @property
    def align(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.widths) - 1)

    @property
    def receptive_radius(self) -> int:
        """Upper bound, in input pixels, of the distance an output pixel depends on."""
        depth = len(self.widths)
        r = 2  # head and tail
        for k in range(depth - 1):
            r += 2 * 2 * self.blocks * 2**k  # encoder and decoder blocks: two 3x3 convs each
            r += 2**k + 2 ** (k + 1)  # the 2x2 down conv and the 2x2 transposed up conv (generous)
        r += 2 * self.blocks * 2 ** (depth - 1)  # body
        if self.estimator is not None:  # the map's context adds to the U-Net's
            r += self.estimator.receptive_radius
        return r

    @property
    def blind(self) -> bool:
        """True when the model estimates its own noise level (no sigma needed)."""
        return self.estimator is not None or not self.noise_map

    def config(self) -> dict:
        cfg = {"kind": KIND, "in_ch": self.in_ch, "widths": list(self.widths), "blocks": self.blocks,
               "noise_map": self.noise_map}
        if self.estimator is not None:
            cfg["estimator"] = {"widths": list(self.estimator.widths), "layers": self.estimator.layers}
        return cfg

    def estimate(self, y: torch.Tensor) -> torch.Tensor:
        """The estimator's noise-level map (B, 1, H, W) on the 0..1 scale."""
        if self.estimator is None:
            raise ValueError("this model has no noise-level estimator")
        return self.estimator(y)

    def level_map(self, sigma, y: torch.Tensor) -> torch.Tensor:
        """The noise-level map (B, 1, H, W) from sigma on the 0..1 scale: a number, (B,) or (B, 1, H, W)."""
        b, _, h, w = y.shape
        s = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
        if s.dim() == 4:
            return s.expand(b, 1, h, w)
        return s.reshape(-1, 1, 1, 1).expand(b, 1, h, w)

    def forward(self, y: torch.Tensor, sigma=None, strength: float = 1.0) -> torch.Tensor:
        """Denoised y: y - n(y, sigma).  sigma is on the 0..1 scale (sigma_255 / 255): a number,
        (B,) or a map (B, 1, H, W); None for a blind model, whose estimator gives the map
        (times `strength`)."""
        if self.noise_map:
            if sigma is None and self.estimator is not None:
                sigma = self.estimator(y) * strength
            if sigma is None:
                raise ValueError("this model needs the noise level sigma")
            x = torch.cat([y, self.level_map(sigma, y)], dim=1)
        else:
            x = y
        h = self.head(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.body(h)
        for i in reversed(range(len(self.up))):
            h = self.dec[i](self.up[i](h) + skips[i])
        return y - self.tail(h)


def config(**overrides) -> dict:
    """The default architecture with `overrides` applied, checked."""
    cfg = {**DEFAULT, **overrides}
    return check(cfg)


MAX_WIDTH = 4096  # channels at one scale (the bundled model's widest has 192)
MAX_BLOCKS = 16


def _whole(v, what: str, lo: int, hi: int) -> int:
    """An integer lo..hi from a config (an integer-valued float too, as older JSON may have), else ValueError."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer {lo}..{hi}, not {v!r}")
    return v


def check(cfg: dict) -> dict:
    """The architecture checked and bounded before anything is built (ValueError with one line)."""
    if not isinstance(cfg, dict):
        raise ValueError("the architecture must be an object")
    if cfg.get("kind", KIND) != KIND:
        raise ValueError(f"unknown denoiser architecture {cfg.get('kind')!r} (expected {KIND!r})")
    widths = cfg.get("widths", DEFAULT["widths"])
    if not isinstance(widths, (list, tuple)) or not 1 <= len(widths) <= 6:
        raise ValueError(f"widths must be 1 to 6 positive integers, got {widths!r}")
    widths = [_whole(w, "a width", 1, MAX_WIDTH) for w in widths]
    in_ch = _whole(cfg.get("in_ch", 3), "in_ch", 1, 3)
    blocks = _whole(cfg.get("blocks", 2), "blocks", 0, MAX_BLOCKS)
    if in_ch not in (1, 3):
        raise ValueError(f"bad denoiser architecture: in_ch={in_ch}, blocks={blocks}")
    out = {"kind": KIND, "in_ch": in_ch, "widths": widths, "blocks": blocks, "noise_map": bool(cfg.get("noise_map", True))}
    est = cfg.get("estimator")
    if est is not None:
        if not isinstance(est, dict) or not out["noise_map"]:
            raise ValueError("an estimator needs noise_map and must be an object {widths, layers}")
        ew = est.get("widths", [16, 32])
        if not isinstance(ew, (list, tuple)) or len(ew) != 2:
            raise ValueError(f"bad estimator widths: {ew!r}")
        ew = [_whole(w, "an estimator width", 1, 256) for w in ew]
        out["estimator"] = {"widths": ew, "layers": _whole(est.get("layers", 2), "estimator layers", 0, 8)}
    return out


def build(cfg: dict) -> UNetDenoiser:
    c = check(cfg)
    return UNetDenoiser(c["in_ch"], c["widths"], c["blocks"], c["noise_map"], c.get("estimator"))

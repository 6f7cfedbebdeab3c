"""Realistic camera noise for training blind denoisers, synthesised from clean sRGB crops (torch).

Real photographs are not clean images plus white Gaussian noise. A sensor's noise is
Poisson-Gaussian in linear light (its variance grows with the signal), each photosite sees one
colour of a Bayer mosaic, demosaicing spreads each site's noise over its neighbours, white
balance and the colour matrix mix and amplify the channels, the tone curve lifts the shadows'
noise, in-camera noise reduction blurs it (colour noise more than luma noise, leaving colour blotches),
sharpening lifts it again, and JPEG quantises what is left. A denoiser trained
on white noise leaves most of that in place. :func:`degrade` walks the camera's pipeline
backwards from a clean sRGB crop to a linear raw-like image, adds sensor noise there, and walks
it forwards again (the ideas of Brooks et al., "Unprocessing Images for Learned Raw Denoising",
CVPR 2019, and of CBDNet's and BSRGAN's degradation models; the code and its parameter ranges
are ours):

    x (sRGB, 0..1)
    -> inverse tone curve (smoothstep), inverse gamma (2.2)          linear RGB
    -> inverse colour matrix (a random, camera-like CCM)              camera RGB
    -> divided by random white-balance gains and a brightness gain    "raw" in 0..1
    -> + noise with variance shot * raw + read (shot, read drawn as cameras at ISO 100-6400 give),
         sampled per photosite of an RGGB mosaic and bilinearly demosaiced (probability p_mosaic),
         else per pixel and channel; sometimes low-passed (in-camera noise reduction), sometimes
         its colour part low-passed more strongly (chroma noise reduction)
    -> the same forward pipeline (gains, clip, CCM, gamma, tone curve, sometimes an unsharp mask)
       on both the noisy and the clean raw: the clean one is the training target, so that clipping
       and sharpening are the same for both
    -> 8-bit rounding, then JPEG at a random quality (probability p_jpeg)

With each pair comes its noise map: the local standard deviation of noisy - target (a Gaussian
window of 1.5 pixels, the channels pooled), what the model's noise-level estimator is taught.

The ranges are those of cameras, not of one test set; CC15 (real noise, validation only) was
used to check that they cover real noise: its noise's autocorrelation (luma about 0.6 at one
pixel, colour noise 0.2-0.45 at five) and colour/luma variance ratio (0.9-2.5) lie inside the
synthetic distribution (docs/denoise_real.md).

A fraction `p_gauss` of the batch gets plain Gaussian noise instead (white, or low-passed, or
the same in all channels, sigma up to `gauss_max`), and `p_clean` gets none, so that the model
also serves white noise and leaves clean images alone.

Every random number comes from the caller's torch.Generator (on the CPU) in a fixed order, so
that a batch's degradation is reproducible and a resumed training run continues with the same
noise as an uninterrupted one. The big noise fields of a batch on a GPU are drawn there, from a
generator seeded by the caller's (the same on every run on that kind of device).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULTS = {
    "p_gauss": 0.2,  # plain Gaussian noise instead of the camera pipeline
    "p_clean": 0.05,  # no noise at all (the target is the input)
    "gauss_max": 50.0,  # sigma of the Gaussian branch, 0..gauss_max (0-255 scale)
    "p_mosaic": 0.9,  # camera noise sampled on a Bayer mosaic and demosaiced
    "p_lowpass": 0.5,  # noise low-passed (in-camera noise reduction, demosaicing finer than bilinear)
    "p_chroma": 0.8,  # colour noise low-passed more than luma noise (in-camera chroma noise reduction)
    "chroma_sigma": [1.0, 4.0],  # its blur, pixels
    "p_sharpen": 0.3,  # the rendered image sharpened (unsharp mask), noise and all
    "p_jpeg": 0.6,  # JPEG after the camera pipeline
    "jpeg_quality": [55, 98],
    "log_shot": [math.log(5e-5), math.log(8e-3)],  # shot-noise factor of a raw value in 0..1
}

LUMA = (0.299, 0.587, 0.114)

# Colour matrices (camera RGB -> linear sRGB) of real cameras have a dominant diagonal and
# negative off-diagonal terms; rows sum to 1 (white stays white). We draw off-diagonals in
# -OFFDIAG..0 per entry.
OFFDIAG = 0.6


def _u(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _normal(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like `like`, on its device (seeded from `gen` off the CPU)."""
    if like.device.type == "cpu":
        return torch.randn(like.shape, generator=gen, dtype=like.dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    dev_gen = torch.Generator(device=like.device).manual_seed(seed)
    return torch.randn(like.shape, generator=dev_gen, device=like.device, dtype=like.dtype)


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample (B,) value as (B, 1, 1, 1) on like's device and dtype."""
    return v.to(device=like.device, dtype=like.dtype).view(-1, 1, 1, 1)


# ---- tone, gamma, colour -------------------------------------------------------------------

def inverse_tone(x: torch.Tensor) -> torch.Tensor:
    """Inverse of the smoothstep tone curve 3x^2 - 2x^3 on 0..1."""
    x = x.clamp(0.0, 1.0)
    return 0.5 - torch.sin(torch.asin((1.0 - 2.0 * x).clamp(-1.0, 1.0)) / 3.0)


def tone(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return 3.0 * x * x - 2.0 * x * x * x


def random_ccm(gen: torch.Generator, b: int) -> torch.Tensor:
    """(B, 3, 3) camera-RGB -> sRGB matrices: rows sum to 1, off-diagonal entries in -OFFDIAG..0."""
    off = -OFFDIAG * torch.rand(b, 3, 3, generator=gen, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(b, 3, 3)
    off = off * (1 - eye)
    return off + eye * (1.0 - off.sum(dim=2, keepdim=True))


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample 3x3 matrix (B, 3, 3) applied to the channels of x (B, 3, H, W)."""
    return torch.einsum("bij,bjhw->bihw", m.to(device=x.device, dtype=x.dtype), x)


# ---- mosaic and noise ----------------------------------------------------------------------

def bayer_masks(h: int, w: int, device) -> torch.Tensor:
    """(1, 3, H, W) masks of an RGGB mosaic: R at (even, even), G at (even, odd) and (odd, even), B at (odd, odd)."""
    yy = torch.arange(h, device=device).view(-1, 1) % 2
    xx = torch.arange(w, device=device).view(1, -1) % 2
    r = (yy == 0) & (xx == 0)
    b = (yy == 1) & (xx == 1)
    g = ~(r | b)
    return torch.stack([r, g, b]).unsqueeze(0).float()


_K_RB = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
_K_G = torch.tensor([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]])


def demosaic_bilinear(mosaic: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaic of (B, 3, H, W) channels that are zero off their own Bayer sites."""
    k = torch.stack([_K_RB, _K_G, _K_RB]).unsqueeze(1).to(device=mosaic.device, dtype=mosaic.dtype)
    return F.conv2d(F.pad(mosaic, (1, 1, 1, 1), mode="reflect"), k, groups=3)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample isotropic Gaussian blur, sigma (B,) in pixels; the kernel reaches 2.5 of the largest
    sigma (at least 2, at most 10 pixels), in two separable passes."""
    b, c = x.shape[:2]
    rad = int(min(10, max(2, math.ceil(2.5 * float(sigma.max())))))
    rad = min(rad, x.shape[2] - 1, x.shape[3] - 1)
    r = torch.arange(-rad, rad + 1, dtype=torch.float64)
    g = torch.exp(-(r.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).clamp_min(1e-3) ** 2))
    g = (g / g.sum(dim=1, keepdim=True)).to(device=x.device, dtype=x.dtype).repeat_interleave(c, dim=0)
    y = x.reshape(1, b * c, *x.shape[2:])
    y = F.conv2d(F.pad(y, (rad, rad, 0, 0), mode="reflect"), g.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, rad, rad), mode="reflect"), g.view(b * c, 1, -1, 1), groups=b * c)
    return y.view_as(x)


def _lowpass(noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Low-passed noise rescaled to keep each sample's energy: correlated noise of the same strength."""
    lp = gaussian_blur(noise, sigma)
    ratio = noise.pow(2).mean(dim=(1, 2, 3), keepdim=True) / lp.pow(2).mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return lp * ratio.sqrt()


# ---- JPEG --------------------------------------------------------------------------------------

_Q_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float64)
_Q_CHROMA = torch.full((8, 8), 99.0, dtype=torch.float64)
_Q_CHROMA[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                                 dtype=torch.float64)


def _dct_matrix() -> torch.Tensor:
    n = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * n.view(1, -1) + 1) * n.view(-1, 1) * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m


_DCT = _dct_matrix()


def quant_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 8, 8) luma and chroma quantisation tables of the IJG quality scale 1..100."""
    q = quality.to(torch.float64).clamp(1, 100).view(-1, 1, 1)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    tabs = [torch.floor((t * scale + 50.0) / 100.0).clamp(1, 255) for t in (_Q_LUMA, _Q_CHROMA)]
    return tabs[0], tabs[1]


def _blocks_quantise(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """8x8 DCT, quantise with the per-sample table (B, 8, 8), inverse DCT; plane (B, 1, H, W), H, W multiples of 8."""
    b, _, h, w = plane.shape
    d = _DCT.to(device=plane.device, dtype=plane.dtype)
    t = table.to(device=plane.device, dtype=plane.dtype).view(b, 1, 1, 8, 8)
    blocks = plane.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # (B, H/8, W/8, 8, 8)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / t) * t
    out = d.T @ coef @ d
    return out.permute(0, 1, 3, 2, 4).reshape(b, 1, h, w)


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Baseline JPEG (YCbCr, 4:2:0 chroma, IJG tables at `quality` (B,)) of x (B, 3, H, W) in 0..1.

    H and W are padded to multiples of 16 (edge replication) and cropped back. Returns 8-bit levels / 255.
    """
    b, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    v = F.pad(x, (0, pw, 0, ph), mode="replicate") * 255.0 if ph or pw else x * 255.0
    r, g, bl = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128.0
    tl, tc = quant_tables(quality)
    y = _blocks_quantise(torch.round(y) - 128.0, tl) + 128.0
    chroma = [_blocks_quantise(torch.round(F.avg_pool2d(c, 2)) - 128.0, tc) + 128.0 for c in (cb, cr)]
    cb, cr = (F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False) - 128.0 for c in chroma)
    rgb = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return (torch.round(rgb).clamp(0, 255) / 255.0)[:, :, :h, :w]


# ---- the whole degradation -------------------------------------------------------------------

def _chroma_lowpass(noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Noise whose colour part (each channel's deviation from the channels' mean) is blurred."""
    luma = noise.mean(dim=1, keepdim=True)
    return luma + gaussian_blur(noise - luma, sigma)


def _sharpen(v: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    return v + _bc(amount, v) * (v - gaussian_blur(v, torch.ones(v.shape[0], dtype=torch.float64)))


def noise_map(noisy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W): the local standard deviation of noisy - target (channels pooled), 0..1 scale."""
    r2 = (noisy - target).pow(2).mean(dim=1, keepdim=True)
    return gaussian_blur(r2, torch.full((r2.shape[0],), 1.5, dtype=torch.float64)).clamp_min(0).sqrt()


def _camera(x: torch.Tensor, gen: torch.Generator, o: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean target, noisy) through the unprocess -> sensor noise -> process pipeline."""
    b, _, h, w = x.shape
    ccm = random_ccm(gen, b)
    wb_r, wb_b = _u(gen, b, 1.6, 2.6), _u(gen, b, 1.3, 2.1)
    bright = _u(gen, b, 0.7, 1.2)  # raw exposure relative to the rendered image
    log_shot = _u(gen, b, *o["log_shot"])
    log_read = 2.18 * log_shot + 1.20 + 0.26 * torch.randn(b, generator=gen, dtype=torch.float64)
    mosaic = torch.rand(b, generator=gen) < o["p_mosaic"]
    lowpass = torch.rand(b, generator=gen) < o["p_lowpass"]
    lp_sigma = _u(gen, b, 0.4, 1.0)
    chroma = torch.rand(b, generator=gen) < o["p_chroma"]
    chroma_sigma = _u(gen, b, *o["chroma_sigma"])
    sharpen = torch.rand(b, generator=gen) < o["p_sharpen"]
    amount = _u(gen, b, 0.2, 0.7) * sharpen
    normal = _normal(x, gen)

    gains = torch.stack([wb_r, torch.ones(b, dtype=torch.float64), wb_b], dim=1) / bright.view(-1, 1)
    gains_t = gains.to(device=x.device, dtype=x.dtype).view(b, 3, 1, 1)
    lin = inverse_tone(x).clamp_min(1e-8) ** 2.2
    raw = (_apply(torch.linalg.inv(ccm), lin) / gains_t).clamp(0.0, 1.0)
    var = _bc(log_shot.exp(), raw) * raw + _bc(log_read.exp(), raw)
    noise = normal * var.sqrt()
    masks = bayer_masks(h, w, x.device)
    noise = torch.where(_bc(mosaic, raw) > 0, demosaic_bilinear(noise * masks), noise)
    noise = torch.where(_bc(lowpass, raw) > 0, _lowpass(noise, lp_sigma), noise)
    noise = torch.where(_bc(chroma, raw) > 0, _chroma_lowpass(noise, chroma_sigma), noise)

    def forward(r: torch.Tensor) -> torch.Tensor:
        lin_out = _apply(ccm, (r * gains_t).clamp(0.0, 1.0)).clamp(0.0, 1.0)
        return _sharpen(tone(lin_out.clamp_min(1e-8) ** (1 / 2.2)), amount).clamp(0.0, 1.0)

    return forward(raw), forward(raw + noise)


def _gaussian(x: torch.Tensor, gen: torch.Generator, o: dict) -> torch.Tensor:
    b = x.shape[0]
    sigma = _u(gen, b, 0.0, o["gauss_max"]) / 255.0
    lowpass = torch.rand(b, generator=gen) < 0.3
    lp_sigma = _u(gen, b, 0.4, 1.2)
    same = torch.rand(b, generator=gen) < 0.2
    noise = _normal(x, gen)
    noise = torch.where(_bc(same, x) > 0, noise[:, :1].expand_as(noise), noise)
    noise = torch.where(_bc(lowpass, x) > 0, _lowpass(noise, lp_sigma), noise)
    return x + noise * _bc(sigma, x)


def degrade(x: torch.Tensor, gen: torch.Generator, opts: dict | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean target, noisy 8-bit input, noise map) for a clean batch x (B, 3, H, W) in 0..1.

    Each sample takes one branch: camera pipeline, plain Gaussian noise, or none (see the module
    text). The noise map (B, 1, H, W) is :func:`noise_map` of the pair.
    """
    o = {**DEFAULTS, **(opts or {})}
    b = x.shape[0]
    u = torch.rand(b, generator=gen)
    use_gauss = u < o["p_gauss"]
    use_clean = (u >= o["p_gauss"]) & (u < o["p_gauss"] + o["p_clean"])
    use_jpeg = torch.rand(b, generator=gen) < o["p_jpeg"]
    quality = _u(gen, b, *o["jpeg_quality"]).round()
    target, noisy = _camera(x, gen, o)
    gauss = _gaussian(x, gen, o)
    g, c = _bc(use_gauss, x) > 0, _bc(use_clean, x) > 0
    target = torch.where(g | c, x, target)
    noisy = torch.where(g, gauss, torch.where(c, x, noisy))
    noisy = torch.round(noisy.clamp(0.0, 1.0) * 255.0) / 255.0
    cam = ~(use_gauss | use_clean)
    noisy = torch.where(_bc(use_jpeg & cam, x) > 0, jpeg(noisy, quality), noisy)
    return target, noisy, noise_map(noisy, target)

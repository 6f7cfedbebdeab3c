"""denoise(image, sigma, strength) -> (image, the noise level used), with a model from the registry.

    pixels (uint8, or float for the papers' protocol) -> 0..1 floats, (1, 3, H, W)
    grayscale with a colour model: the gray plane as 3 equal channels, the output's channels
        averaged back to one (the model is trained with such gray samples)
    colour with a 1-channel model: each channel on its own
    sigma: given (0..255 scale), or estimated from the image (blind: None or "auto"): by the model's
        own noise-level estimator where it has one (a per-pixel map, `dn-real`), else by the
        classical estimate of aecli/denoise/noise.py (one sigma, `dn`)
    strength: multiplies the level (given, estimated or the map): below 1 keeps more texture,
        above 1 smooths more
    pad to a multiple of the model's alignment (reflection), run tiled, crop, clip, round
    alpha: passed through untouched; L in -> L out, RGB in -> RGB out

Large images run in tiles of TILE x TILE pixels, each with a halo of context that covers the
network's receptive field (`receptive_radius`), so the tiled result equals the untiled one up
to float rounding and memory stays bounded by the tile size.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import cache, registry
from ..devices import exact_float32, pick_device
from ..errors import UserError
from ..images.image import Image
from ..tiling import tiled
from .model import UNetDenoiser, build, check
from .noise import Sigma, estimate_sigma, parse_strength  # noqa: F401 (parse_strength: for callers)

LAYOUT = torch.channels_last  # the model's memory layout: oneDNN's faster convolutions on x86 CPUs (docs/results/perf_layout.md)
TILE = 640  # pixels per tile side (peak memory of a 50-megapixel image about 1.2 GB: docs/results/scale.md)
HALO_FRACTION = 0.7  # of the receptive radius: where the output stops depending on the context


def halo_of(model: UNetDenoiser) -> int:
    """Context around each tile: 70% of the receptive radius, rounded up to the alignment.

    The receptive radius is an upper bound; the outputs depend on far less in practice. For the
    bundled model (radius 67 pixels) a 48-pixel halo gives tiled outputs identical to untiled ones
    (tiles of 128 pixels, sigma 25, three CBSD432 images), 32 pixels differs by at most one level
    and 0.0003 dB, and the smaller halo saves a quarter of the work on large images.
    """
    a = model.align
    return -(-int(model.receptive_radius * HALO_FRACTION) // a) * a


@dataclass
class NoiseLevel:
    """What a denoise call used: sigma given or estimated (0..255 scale), or the model's own map."""

    how: str  # "given", "estimated" (one sigma for the image), "map" (the model's per-pixel estimate)
    sigma: float | None = None  # the level given or estimated (before strength); None for a map
    strength: float = 1.0
    map_values: list = field(default_factory=list, repr=False)  # samples of the map (0..255 scale), for `summary`

    def summary(self) -> str:
        k = f" x{self.strength:g}" if self.strength != 1.0 else ""
        if self.how == "map":
            if not self.map_values:
                return f"noise map estimated{k}"
            v = np.concatenate(self.map_values)
            lo, med, hi = np.percentile(v, [10, 50, 90])
            return f"noise map estimated (sigma-equivalent median {med:.1f}, 10-90% {lo:.1f}-{hi:.1f}){k}"
        return f"sigma {self.sigma:.1f} ({self.how}){k}"


@torch.inference_mode()
def run_model(model: UNetDenoiser, pixels: np.ndarray, sigma: float | None, tile: int | None = None,
              halo: int | None = None, rounded: bool = False, strength: float = 1.0,
              level: NoiseLevel | None = None) -> np.ndarray:
    """The denoised HxW / HxWx3 image of `pixels` (0..255 scale, any dtype) at noise level sigma:
    float32, not clipped; or with `rounded`, uint8 (rounded, clipped).

    sigma None: the model's own noise-level map (a blind model), times `strength`; samples of the
    map go to `level.map_values` when `level` is given. A given sigma is multiplied by `strength` too.

    The image stays in its own dtype (a uint8 copy for 8-bit input) and each tile is converted to
    float on its own, so a large 8-bit image needs a few bytes per pixel beyond the tile's work.
    """
    gray = pixels.ndim == 2
    device = next(model.parameters()).device
    arr = np.asarray(pixels)
    if arr.dtype not in (np.uint8, np.float32):
        arr = arr.astype(np.float32)
    h, w = arr.shape[:2]
    a = model.align
    ph, pw = (-h) % a, (-w) % a
    pad = ((0, ph), (0, pw)) + (() if gray else ((0, 0),))
    # a copy either way: never the caller's array (reflect as torch's pad does; edge for tiny images)
    arr = np.pad(arr, pad, mode="reflect" if ph < h and pw < w else "edge") if ph or pw else arr.copy()
    x = torch.from_numpy(arr)
    x = x[None, None] if gray else x.permute(2, 0, 1)[None]  # (1, C, H, W), a view
    if model.in_ch == 3 and gray:
        x = x.expand(1, 3, *x.shape[2:])
    elif model.in_ch == 1 and not gray:
        x = x.permute(1, 0, 2, 3)  # the channels as a batch of gray images
    sigma01 = None if sigma is None else float(sigma) * strength / 255.0
    tile = TILE if tile is None else tile
    halo = halo_of(model) if halo is None else halo
    if tile <= 0 or tile % a or halo % a:
        raise ValueError(f"tile ({tile}) and halo ({halo}) must be multiples of {a}")

    def run(t: torch.Tensor) -> torch.Tensor:
        t = t.to(device=device, dtype=torch.float32, copy=True).div_(255.0)  # a copy: the halos overlap
        t = t.contiguous(memory_format=LAYOUT)
        m = sigma01
        if m is None and model.estimator is not None:
            m = model.estimate(t) * strength
            if level is not None:  # every 4th pixel of the tile (halo included), for the report
                level.map_values.append(m[:, 0, ::4, ::4].flatten().float().cpu().numpy() * 255.0)
        y = model(t, m).contiguous().cpu()
        if model.in_ch == 1 and not gray:
            y = y.permute(1, 0, 2, 3)
        if gray:
            y = y.mean(dim=1, keepdim=True)
        y = y.mul_(255.0)
        return y.round_().clamp_(0, 255).to(torch.uint8) if rounded else y

    with exact_float32(device):
        y = tiled(run, x, 1, up=False, tile=tile, halo=halo)[0, :, :h, :w]
    out = np.ascontiguousarray(y.permute(1, 2, 0).numpy())
    return out[:, :, 0] if gray else out


@dataclass
class Denoiser:
    """A loaded denoising model."""

    files: registry.ModelFiles
    model: UNetDenoiser

    @classmethod
    def load(cls, files: registry.ModelFiles, device: str | torch.device = "cpu") -> "Denoiser":
        arch = files.meta.get("architecture")
        try:
            check(arch)
            _sigma_range(files.meta)
        except ValueError as exc:
            raise UserError(f"model '{files.name}': unknown or damaged architecture ({exc})") from None
        registry.check_size(files, lambda: build(arch))  # before anything is allocated
        tensors = registry.load_tensors(files)
        model = build(arch)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise UserError(f"model '{files.name}': weights do not match its architecture ({str(exc).splitlines()[0]})") from None
        model.eval().to(device)
        model.to(memory_format=LAYOUT)
        return cls(files, model)

    @property
    def name(self) -> str:
        return self.files.name

    @property
    def halo(self) -> int:
        return halo_of(self.model)

    @property
    def sigma_range(self) -> tuple[float, float] | None:
        return _sigma_range(self.files.meta)

    def choose_sigma(self, pixels: np.ndarray, sigma: Sigma | float | str | None,
                     strength: float = 1.0) -> NoiseLevel:
        """The level to denoise `pixels` at: given, estimated by the classical estimate, or the model's
        own map.  `sigma`: a Sigma (the commands parse --sigma once), or what Sigma.parse takes."""
        sigma = Sigma.parse(sigma)
        if sigma.given:
            if not self.model.noise_map:
                raise UserError(f"model '{self.name}' is blind (it takes no noise level); leave out --sigma")
            return NoiseLevel("given", sigma.value, strength)
        if not self.model.noise_map or self.model.estimator is not None:
            return NoiseLevel("map", None, strength)
        return NoiseLevel("estimated", estimate_sigma(pixels, clipped_range=pixels.dtype == np.uint8), strength)

    # ---- arrays ---------------------------------------------------------------------------
    def run(self, pixels: np.ndarray, sigma: float | None, tile: int | None = None, halo: int | None = None,
            strength: float = 1.0) -> np.ndarray:
        """The denoised float32 image (0..255 scale, not clipped) of HxW or HxWx3 `pixels` at noise level
        sigma (None: a blind model's own map)."""
        return run_model(self.model, pixels, sigma, tile, halo, strength=strength)

    def denoise_array(self, pixels: np.ndarray, sigma=None, *, strength: float = 1.0, tile: int | None = None,
                      halo: int | None = None) -> tuple[np.ndarray, NoiseLevel]:
        """(uint8 denoised HxW / HxWx3, the level used) from uint8 or float (0..255) `pixels`."""
        pixels = np.asarray(pixels)
        if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)) or pixels.size == 0:
            raise ValueError(f"expected an HxW or HxWx3 image, got shape {pixels.shape}")
        level = self.choose_sigma(pixels, sigma, strength)
        out = run_model(self.model, pixels, level.sigma, tile, halo, rounded=True, strength=strength, level=level)
        return out, level

    # ---- images ---------------------------------------------------------------------------
    def denoise(self, img: Image, sigma=None, *, strength: float = 1.0, tile: int | None = None,
                halo: int | None = None) -> tuple[Image, NoiseLevel]:
        """(denoised image, the level used).  sigma: a Sigma, a number (0..255 scale), None or 'auto' (estimated)."""
        px, level = self.denoise_array(img.pixels, sigma, strength=strength, tile=tile, halo=halo)
        return Image(pixels=np.ascontiguousarray(px), alpha=img.alpha, mode=img.mode, source_bits=8), level


def _sigma_range(meta: dict) -> tuple[float, float] | None:
    """The noise levels a model was trained for, from its metadata (ValueError if malformed)."""
    r = meta.get("noise", {}).get("sigma_range")
    if not r:
        return None
    if not (isinstance(r, list) and len(r) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r)):
        raise ValueError(f"noise.sigma_range must be two numbers, not {r!r}")
    return float(r[0]), float(r[1])


BLIND_DEFAULT = "dn-real"  # the bundled model for --sigma auto: real camera noise, its own noise map


def default_model(sigma: Sigma) -> str | None:
    """The bundled model a command without --model uses: `dn-real` when the level is left to the
    model (--sigma auto) and it is installed, else the registry's default (`dn`, Gaussian noise)."""
    if not Sigma.parse(sigma).given:
        try:
            registry.resolve(BLIND_DEFAULT, "denoise")
            return BLIND_DEFAULT
        except UserError:
            pass
    return None


def load_denoiser(spec: str | None = None, device: str = "cpu") -> Denoiser:
    """A model by path or name (default: the bundled 'dn'), loaded once per process."""
    try:
        files = registry.resolve(spec, "denoise")
    except UserError as exc:
        if spec or "not found" not in str(exc):
            raise
        default = registry.DEFAULTS["denoise"]
        raise UserError(
            f"model '{default}' not found: the bundled denoising weights are not installed "
            f"(train them with scripts/train_denoise.sh, or give --model)"
        ) from None
    return cache.loaded(Denoiser, files, pick_device(device))

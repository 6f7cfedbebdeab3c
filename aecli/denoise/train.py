"""Training the denoiser (`aecli train --task denoise`): its options and its task for the training loop
(aecli/train/loop.py). Clean crops, synthetic Gaussian noise over a range of levels, L1 loss.

For each sample of a batch (all random numbers from the loop's generator, so resume is exact):
    sigma ~ U(sigma_range) / 255                       the noise level, also given as the map
    with probability gray_prob: the crop becomes gray (luma in all 3 channels, the same noise
        in all 3), so one colour model also serves grayscale images
    y = x + sigma * N(0, 1)                            float noise (the papers' protocol)
    with probability clip_prob: y = round(clip(y, 0, 1) * 255) / 255   (an 8-bit noisy file)
    loss = L1 (or MSE) between model(y, sigma) and x

Validation: the held-out images at sigma 15, 25, 50 with float Gaussian noise from fixed seeds
(numpy, independent of the training RNG), PSNR with the true sigma and blind (estimated sigma).

Real-noise recipe (`noise: "real"`, the blind model `dn-real`): the model has a noise-level
estimator (aecli/denoise/model.py) and never sees sigma; each batch is degraded by
aecli/denoise/degrade.py (camera pipeline with sensor noise, demosaicing and JPEG; some plain
Gaussian noise; some clean crops). The estimator is taught the true noise map of each pair (the
local standard deviation of noisy - clean, aecli/denoise/degrade.py's noise_map) with an L1
loss of weight `map_weight`; the U-Net gets the true map for a fraction `p_true_map` of the
samples and the estimated one for the others, so that it learns what the map means (a local
noise level on the sigma/255 scale) and `--strength`, which multiplies the estimated map,
smooths less or more as asked. The loss is L1 to the clean target plus the map's loss.
Its validation degrades each held-out image (cropped to multiples of 16) by the camera pipeline
alone with VAL_REAL_DRAWS fixed seeds and reports the mean PSNR of input and output against the clean target, and the
blind PSNR at sigma 15, 25, 50.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import registry
from ..errors import UserError
from .. import metrics
from ..train.config import Asked, TrainConfig, ints, require_positive
from ..train.data import CropDataset, PairDataset, find_pairs, list_images
from ..train.init import source_architecture
from ..train.task import Task
from . import model as dn_model
from .api import run_model
from .degrade import DEFAULTS as DEGRADE_DEFAULTS
from .degrade import degrade, noise_map
from .noise import add_gaussian, estimate_sigma

VAL_SIGMAS = (15, 25, 50)
VAL_REAL_DRAWS = 3  # degradations per held-out image (torch generator seeded VAL_SEED * 1000 + 10 * image + draw)
VAL_SEED = 20240  # noise of validation image i at level s: numpy default_rng([VAL_SEED, i, s])
REAL_DEFAULTS = {"estimator": {"widths": [16, 32], "layers": 2}, "map_weight": 1.0, "p_true_map": 0.5}
LUMA = (0.299, 0.587, 0.114)
DEFAULT_CHANNELS = "32,64,128"
DEFAULT_SIGMA_RANGE = "0,50"


def _recipe_architecture(cfg: dict) -> dict:
    """The architecture a denoiser checkpoint's saved recipe builds (widths, blocks, its estimator)."""
    extra = cfg.get("extra") or {}
    arch = {k: extra[k] for k in ("widths", "blocks") if k in extra}
    if extra.get("noise") == "real":
        arch["estimator"] = extra.get("estimator") or {"widths": [16, 32], "layers": 2}
    return arch


@dataclass
class DenoiseOptions:
    """The denoiser's recipe; in a checkpoint's "config", its "extra" (train/config.py)."""

    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # U-Net widths per scale
    blocks: int = 2  # residual blocks per scale
    sigma_range: list[float] = field(default_factory=lambda: [0.0, 50.0])  # noise levels drawn (0-255 scale)
    gray_prob: float = 0.2
    clip_prob: float = 0.25
    loss: str = "l1"  # or "mse"
    noise: str | None = None  # "gaussian", or "real": the blind model for camera noise (None: gaussian, older recipes)
    # real noise only; None: REAL_DEFAULTS' (and left out of the recipe)
    estimator: dict | None = None
    map_weight: float | None = None
    p_true_map: float | None = None
    degrade: dict | None = None  # changes to aecli/denoise/degrade.py's DEFAULTS

    @property
    def real(self) -> bool:
        return self.noise == "real"

    def real_option(self, key: str):
        """A real-noise option: the recipe's, else REAL_DEFAULTS'."""
        value = getattr(self, key)
        return REAL_DEFAULTS[key] if value is None else value

    def record(self) -> dict:
        return {"extra": {k: v for k, v in asdict(self).items() if v is not None}}

    @classmethod
    def from_record(cls, record: dict) -> DenoiseOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (record.get("extra") or {}).items() if k in names})


class DenoiseTask(Task):
    name = "denoise"
    Options = DenoiseOptions
    DEFAULTS = {"steps": 100_000, "batch_size": 16, "patch": 128, "lr": 2e-4}
    FINETUNE = {"steps": 5000, "lr": 4e-5}  # fine-tuning a trained model (--init)
    USE = "aecli denoise --model {m} noisy.png"

    def __init__(self, cfg: TrainConfig | None = None):
        self.o = cfg.options if cfg is not None else DenoiseOptions()

    # -- the command line ------------------------------------------------------------------------

    @classmethod
    def recipe(cls, a: Asked) -> tuple[Asked, DenoiseOptions]:
        """Widths, blocks and noise (with --init, the architecture of the model it starts from)."""
        if a.quality is not None:
            raise UserError("--quality is for --task codec")
        channels, blocks, real_noise, arch = a.channels, a.blocks, a.real_noise, {}
        if a.init is not None and not a.resume:  # fine-tuning: the architecture of the model it starts from
            arch = source_architecture(a.init, "denoise", _recipe_architecture)
            if channels is None and arch.get("widths"):
                channels = ",".join(str(w) for w in arch["widths"])
            if blocks is None and arch.get("blocks") is not None:
                blocks = int(arch["blocks"])
            if arch.get("estimator") and a.sigma_range is None:
                real_noise = True  # a blind real-noise model stays one
        if blocks is not None and not 1 <= blocks <= 8:
            raise UserError("--blocks must be 1..8")
        widths = ints(channels or DEFAULT_CHANNELS, "--channels must be integers, the U-Net widths per scale, such as 32,64,128")
        if not 1 <= len(widths) <= 6:
            raise UserError("--channels must give 1 to 6 U-Net widths, such as 32,64,128")
        o = DenoiseOptions(widths=widths, sigma_range=_sigma_range(a.sigma_range or DEFAULT_SIGMA_RANGE), noise="gaussian")
        if real_noise:
            if a.sigma_range is not None:
                raise UserError("--sigma-range is for Gaussian-noise training; --real-noise draws its own noise")
            o.noise = "real"
            if arch.get("estimator"):
                o.estimator = arch["estimator"]
        if blocks is not None:
            o.blocks = blocks
        return replace(a, model=a.model or dn_model.KIND), o

    @classmethod
    def check(cls, a: Asked, options: DenoiseOptions) -> None:
        scales = len(options.widths)
        require_positive(a.steps, a.batch_size, a.patch, *options.widths)
        if a.patch % 2 ** (scales - 1):
            raise UserError(f"--patch must be a multiple of {2 ** (scales - 1)} for a {scales}-scale U-Net")

    # -- training --------------------------------------------------------------------------------

    @property
    def real(self) -> bool:
        return self.o.real

    def dataset(self, cfg: TrainConfig):
        """Clean images (noise synthesised), or noisy/clean pairs (a real-noise model's fine-tuning)."""
        if self.real and find_pairs(cfg.data):
            return PairDataset(cfg.data, cfg.patch, holdout=cfg.holdout)
        return CropDataset(cfg.data, cfg.patch, holdout=cfg.holdout)

    def build(self, cfg: TrainConfig):
        o = cfg.options
        arch = {"kind": cfg.model, "in_ch": 3, "widths": o.widths, "blocks": o.blocks, "noise_map": True}
        if o.real:
            arch["estimator"] = o.real_option("estimator")
        return dn_model.build(arch)

    def optimizers(self, model, cfg: TrainConfig):
        return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

    @staticmethod
    def corrupt(x: torch.Tensor, gen: torch.Generator, o: DenoiseOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean, noisy, sigma on the 0..1 scale) for a clean batch x in [0, 1]."""
        b = x.shape[0]
        lo, hi = o.sigma_range
        sigma = (lo + (hi - lo) * torch.rand(b, generator=gen)) / 255.0
        gray = torch.rand(b, generator=gen) < o.gray_prob
        clip = torch.rand(b, generator=gen) < o.clip_prob
        noise = torch.randn(x.shape, generator=gen)
        sigma, gray, clip, noise = (t.to(x.device) for t in (sigma, gray, clip, noise))
        g = gray.view(b, 1, 1, 1)
        luma = sum(w * x[:, i : i + 1] for i, w in enumerate(LUMA))
        luma = torch.round(luma * 255.0) / 255.0
        x = torch.where(g, luma.expand_as(x), x)
        noise = torch.where(g, noise[:, :1].expand_as(noise), noise)
        y = x + noise * sigma.view(b, 1, 1, 1)
        y = torch.where(clip.view(b, 1, 1, 1), torch.round(y.clamp(0, 1) * 255.0) / 255.0, y)
        return x, y, sigma

    def loss(self, model, batch, gen):
        o = self.o
        extra = {}
        if self.real:
            if batch.shape[1] == 6:  # noisy/clean pairs: the camera's own noise
                y, x = batch[:, :3], batch[:, 3:]
                true_map = noise_map(y, x)
            else:
                x, y, true_map = degrade(batch, gen, o.degrade)
            sigma_map = model.estimate(y)
            given = (torch.rand(y.shape[0], generator=gen) < o.real_option("p_true_map")).to(y.device).view(-1, 1, 1, 1)
            out = model(y, torch.where(given, true_map, sigma_map))
            map_loss = F.l1_loss(sigma_map, true_map)
            sigma = sigma_map.detach().mean(dim=(1, 2, 3))
            extra = {"map_err": map_loss.detach() * 255}
        else:
            x, y, sigma = self.corrupt(batch, gen, o)
            out = model(y, sigma)
        if o.loss == "mse":
            loss = F.mse_loss(out, x)
        else:
            loss = F.l1_loss(out, x)
        if self.real:
            loss = loss + o.real_option("map_weight") * map_loss
        with torch.no_grad():
            mse = F.mse_loss(out.clamp(0, 1), x, reduction="none").mean(dim=(1, 2, 3))
            psnr = (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()
        return loss, {"loss": loss.detach(), "psnr": psnr, "sigma": sigma.mean() * 255, **extra}

    @torch.no_grad()
    def validate(self, model, data: CropDataset, device) -> list[dict]:
        """Mean PSNR on the held-out images at each of VAL_SIGMAS, with the true and the estimated sigma."""
        images = data.val_images or data.images[:4]
        if isinstance(data, PairDataset):
            return self._validate_pairs(model, images, device)
        rows = self._validate_real(model, images, device) if self.real else []
        for s in VAL_SIGMAS:
            known, blind, est = [], [], []
            for i, img in enumerate(images):
                clean = img.permute(1, 2, 0).numpy()
                noisy = add_gaussian(clean, s, [VAL_SEED, i, s], clip=False)
                e = estimate_sigma(noisy, clipped_range=False)
                levels = ((None, blind),) if self.real else ((float(s), known), (e, blind))
                for level, acc in levels:
                    out = run_model(model, noisy, level, tile=1 << 20)
                    acc.append(metrics.psnr(np.clip(np.rint(out), 0, 255).astype(np.uint8), clean))
                est.append(e)
            row = {"sigma": s, "psnr_blind": round(float(np.mean(blind)), 3), "sigma_estimated": round(float(np.mean(est)), 2)}
            if known:
                row["psnr"] = round(float(np.mean(known)), 3)
            rows.append(row)
        return rows

    @staticmethod
    def _validate_pairs(model, pairs, device) -> list[dict]:
        """Mean PSNR of the held-out noisy images and of the model's outputs against their clean images."""
        noisy_psnr, out_psnr = [], []
        for t in pairs:
            noisy, clean = (np.ascontiguousarray(t[c : c + 3].permute(1, 2, 0).numpy()) for c in (0, 3))
            noisy_psnr.append(metrics.psnr(noisy, clean))
            out_psnr.append(metrics.psnr(run_model(model, noisy, None, tile=1 << 20, rounded=True), clean))
        return [{"noise": "pairs", "images": len(pairs), "psnr_noisy": round(float(np.mean(noisy_psnr)), 3),
                 "psnr": round(float(np.mean(out_psnr)), 3)}]

    @staticmethod
    def _validate_real(model, images, device) -> list[dict]:
        """Mean PSNR of the degraded input and of the model's output against the clean target."""
        noisy_psnr, out_psnr = [], []
        for i, img in enumerate(images):
            h, w = (d - d % 16 for d in img.shape[1:])
            x = img[:, :h, :w].float().div(255.0).unsqueeze(0)
            for draw in range(VAL_REAL_DRAWS):
                gen = torch.Generator().manual_seed(VAL_SEED * 1000 + 10 * i + draw)
                target, noisy, _ = degrade(x, gen, {"p_gauss": 0.0, "p_clean": 0.0})  # the camera pipeline alone
                target, noisy = target.to(device), noisy.to(device)
                out = torch.round(model(noisy).clamp(0, 1) * 255) / 255
                for a, acc in ((noisy, noisy_psnr), (out, out_psnr)):
                    mse = F.mse_loss(a, target).clamp_min(1e-10)
                    acc.append(float(10 * torch.log10(1 / mse)))
        return [{"noise": "real", "draws": len(out_psnr), "psnr_noisy": round(float(np.mean(noisy_psnr)), 3),
                 "psnr": round(float(np.mean(out_psnr)), 3)}]

    def export(self, model, cfg: TrainConfig, out: Path, record: dict, history: list) -> None:
        o = cfg.options
        vals = [h["val"] for h in history if "val" in h]
        pairs = find_pairs(cfg.data) if self.real else []
        files = [noisy for noisy, _ in pairs] or list_images(cfg.data)
        val_files = files[len(files) - cfg.holdout :] if cfg.holdout < len(files) else files[:4]
        meta = {
            "name": Path(cfg.out).name,
            "task": "denoise",
            "architecture": model.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "noise": ({"kind": "real", "degrade": {**DEGRADE_DEFAULTS, **(o.degrade or {})},
                       "map_weight": o.real_option("map_weight"), "p_true_map": o.real_option("p_true_map"),
                       **({"pairs": len(pairs)} if pairs else {})} if self.real else
                      {"kind": "gaussian", "sigma_range": list(o.sigma_range), "gray_prob": o.gray_prob,
                       "clip_prob": o.clip_prob}),
            "training": {**record, "loss": o.loss, "lr": cfg.lr},
            "validation": {
                "images": [p.name for p in val_files],
                "noise": f"float Gaussian, numpy default_rng([{VAL_SEED}, image index, sigma])"
                         + (f"; real: aecli/denoise/degrade.py with torch seeds {VAL_SEED} * 1000 + 10 * image + draw "
                            f"(draw < {VAL_REAL_DRAWS}), images cropped to multiples of 16" if self.real else ""),
                "psnr": vals[-1] if vals else None,
            },
        }
        tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        registry.save(tensors, meta, Path(out) / f"{meta['name']}.safetensors")

    # -- what the first and last lines say ---------------------------------------------------------

    def describe(self, cfg: TrainConfig) -> str:
        o = cfg.options
        noise = "real camera noise" if o.real else f"Gaussian noise {o.sigma_range}"
        return f"a U-Net denoiser (widths {','.join(str(w) for w in o.widths)}, {noise})"

    def figures(self, val) -> str | None:
        """PSNR at each noise level (and of the real-noise validation, input -> output)."""
        if not isinstance(val, list):
            return None
        return ", ".join(f"sigma {r['sigma']}: {r.get('psnr', r.get('psnr_blind')):.2f} dB" if "sigma" in r else
                         f"{r.get('noise')}: {r.get('psnr_noisy')} -> {r.get('psnr')} dB" for r in val)


def _sigma_range(text: str) -> list[float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError("--sigma-range must be two numbers LO,HI such as 0,50") from None
    if not 0 <= lo <= hi <= 255:
        raise UserError("--sigma-range must satisfy 0 <= LO <= HI <= 255 (0-255 scale)")
    return [lo, hi]

"""Denoising training: clean crops, synthetic Gaussian noise over a range of levels, L1 loss.

For each sample of a batch (all random numbers from the loop's generator, so resume is exact):
    sigma ~ U(sigma_range) / 255                       the noise level, also given as the map
    with probability gray_prob: the crop becomes gray (luma in all 3 channels, the same noise
        in all 3), so one colour model also serves grayscale images
    y = x + sigma * N(0, 1)                            float noise (the papers' protocol)
    with probability clip_prob: y = round(clip(y, 0, 1) * 255) / 255   (an 8-bit noisy file)
    loss = L1 (or MSE) between model(y, sigma) and x

Validation: the held-out images at sigma 15, 25, 50 with float Gaussian noise from fixed seeds
(numpy, independent of the training RNG), PSNR with the true sigma and blind (estimated sigma).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..denoise import model as dn_model
from .data import CropDataset
from .loop import TrainConfig

VAL_SIGMAS = (15, 25, 50)
VAL_SEED = 20240  # noise of validation image i at level s: numpy default_rng([VAL_SEED, i, s])
DEFAULTS = {"widths": [32, 64, 128], "blocks": 2, "sigma_range": [0.0, 50.0], "gray_prob": 0.2, "clip_prob": 0.25,
            "loss": "l1"}
LUMA = (0.299, 0.587, 0.114)


class DenoiseTask:
    name = "denoise"

    def __init__(self, cfg: TrainConfig | None = None):
        self.opts = self.options(cfg) if cfg is not None else dict(DEFAULTS)

    @staticmethod
    def options(cfg: TrainConfig) -> dict:
        return {**DEFAULTS, **(cfg.extra or {})}

    def dataset(self, cfg: TrainConfig) -> CropDataset:
        return CropDataset(cfg.data, cfg.patch, holdout=cfg.holdout)

    def build(self, cfg: TrainConfig):
        o = self.options(cfg)
        return dn_model.build({"kind": cfg.model, "in_ch": 3, "widths": o["widths"], "blocks": o["blocks"], "noise_map": True})

    def optimizers(self, model, cfg: TrainConfig):
        return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

    @staticmethod
    def corrupt(x: torch.Tensor, gen: torch.Generator, o: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean, noisy, sigma on the 0..1 scale) for a clean batch x in [0, 1]."""
        b = x.shape[0]
        lo, hi = o["sigma_range"]
        sigma = (lo + (hi - lo) * torch.rand(b, generator=gen)) / 255.0
        gray = torch.rand(b, generator=gen) < o["gray_prob"]
        clip = torch.rand(b, generator=gen) < o["clip_prob"]
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
        o = self.opts
        x, y, sigma = self.corrupt(batch, gen, o)
        out = model(y, sigma)
        if o["loss"] == "mse":
            loss = F.mse_loss(out, x)
        else:
            loss = F.l1_loss(out, x)
        with torch.no_grad():
            mse = F.mse_loss(out.clamp(0, 1), x, reduction="none").mean(dim=(1, 2, 3))
            psnr = (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()
        return loss, {"loss": loss.item(), "psnr": psnr.item(), "sigma": sigma.mean().item() * 255}

    @torch.no_grad()
    def validate(self, model, data: CropDataset, device) -> list[dict]:
        """Mean PSNR on the held-out images at each of VAL_SIGMAS, with the true and the estimated sigma."""
        from ..denoise.api import run_model
        from ..denoise.noise import add_gaussian, estimate_sigma
        from ..eval.metrics import psnr

        images = data.val_images or data.images[:4]
        rows = []
        for s in VAL_SIGMAS:
            known, blind, est = [], [], []
            for i, img in enumerate(images):
                clean = img.permute(1, 2, 0).numpy()
                noisy = add_gaussian(clean, s, [VAL_SEED, i, s], clip=False)
                e = estimate_sigma(noisy, clipped_range=False)
                for level, acc in ((float(s), known), (e, blind)):
                    out = run_model(model, noisy, level, tile=1 << 20)
                    acc.append(psnr(np.clip(np.rint(out), 0, 255).astype(np.uint8), clean))
                est.append(e)
            rows.append({"sigma": s, "psnr": round(float(np.mean(known)), 3), "psnr_blind": round(float(np.mean(blind)), 3),
                         "sigma_estimated": round(float(np.mean(est)), 2)})
        return rows

    def export(self, model, cfg: TrainConfig, out: Path, record: dict, history: list) -> None:
        from .. import registry
        from .data import list_images

        o = self.options(cfg)
        vals = [h["val"] for h in history if "val" in h]
        files = list_images(cfg.data)
        val_files = files[len(files) - cfg.holdout :] if cfg.holdout < len(files) else files[:4]
        meta = {
            "name": Path(cfg.out).name,
            "task": "denoise",
            "architecture": model.config(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "noise": {"kind": "gaussian", "sigma_range": list(o["sigma_range"]), "gray_prob": o["gray_prob"],
                      "clip_prob": o["clip_prob"]},
            "training": {**record, "loss": o["loss"], "lr": cfg.lr},
            "validation": {
                "images": [p.name for p in val_files],
                "noise": f"float Gaussian, numpy default_rng([{VAL_SEED}, image index, sigma])",
                "psnr": vals[-1] if vals else None,
            },
        }
        tensors = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        registry.save(tensors, meta, Path(out) / f"{meta['name']}.safetensors")

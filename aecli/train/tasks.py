"""What is task-specific in training: model, loss, validation, export."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..codec import model as codec_model
from .data import CropDataset
from .loop import TrainConfig, validations


class CodecTask:
    """Rate-distortion training: loss = lambda * 255^2 * MSE + bpp, one lambda per quality."""

    name = "codec"
    # validation rates are code lengths of the rounded latents (eval mode); earlier validations took
    # the likelihoods at noisy latents, which overstates low rates, and are redone at export
    validation_method = "rounded"

    def dataset(self, cfg: TrainConfig) -> CropDataset:
        return CropDataset(cfg.data, cfg.patch, holdout=cfg.holdout)

    def lambdas(self, cfg: TrainConfig) -> tuple[float, ...]:
        """The run's levels: recorded in its recipe (extra["lambdas"]); a checkpoint from before
        they were recorded has CompressAI's eight."""
        if cfg.extra.get("lambdas"):
            return tuple(float(v) for v in cfg.extra["lambdas"])
        if cfg.quality:
            return (codec_model.COMPRESSAI_LAMBDAS[cfg.quality - 1],)
        return codec_model.COMPRESSAI_LAMBDAS

    def build(self, cfg: TrainConfig):
        # extra["nh"]: the hyper width of a widened model (scripts/widen_codec.py), else n
        return codec_model.build({"kind": cfg.model, "n": cfg.n, "m": cfg.m, "lambdas": self.lambdas(cfg),
                                  "nh": cfg.extra.get("nh")})

    GAINS = ("gain", "inv_gain", "hgain", "inv_hgain")

    def optimizers(self, model, cfg: TrainConfig):
        """Adam on the network, Adam with a larger step on the per-quality gains, Adam on the quantiles."""
        named = list(model.named_parameters())
        main = [p for n, p in named if not n.endswith("quantiles") and n not in self.GAINS]
        gains = [p for n, p in named if n in self.GAINS]
        aux = [p for n, p in named if n.endswith("quantiles")]
        groups = [{"params": main}, {"params": gains, "lr_scale": cfg.gain_lr_scale}]
        return torch.optim.Adam(groups, lr=cfg.lr), torch.optim.Adam(aux, lr=1e-3)

    @staticmethod
    def _rd(model, x, q):
        out = model(x, q)
        pixels = x.shape[2] * x.shape[3]
        bits = sum(torch.log(l).sum(dim=(1, 2, 3)) for l in out["likelihoods"]) / -math.log(2)
        bpp = bits / pixels
        mse = F.mse_loss(out["x_hat"], x, reduction="none").mean(dim=(1, 2, 3))
        return out, bpp, mse

    def loss(self, model, x, gen):
        q = torch.randint(model.qualities, (x.shape[0],), generator=gen).to(x.device)
        _, bpp, mse = self._rd(model, x, q)
        loss = (model.lambda_of(q) * 255**2 * mse + bpp).mean()
        psnr = (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()
        # stats stay on the device (no wait for the GPU at every step); the loop reads them when it logs
        return loss, {"loss": loss.detach(), "bpp": bpp.mean().detach(), "psnr": psnr.detach()}

    @torch.no_grad()
    def validate(self, model, data: CropDataset, device) -> list[dict]:
        """Per quality on the held-out images: bpp, the code length of the rounded latents under the
        model's densities (within a few percent of the coded streams), and PSNR of the rounded
        8-bit reconstruction."""
        images = data.val_images or data.images[:4]
        was_training = model.training
        model.eval()
        rows = []
        for q in range(model.qualities):
            bpps, psnrs = [], []
            for img in images:
                x = img.float().div(255).unsqueeze(0).to(device)
                h, w = x.shape[2:]
                a = model.align
                x = F.pad(x, (0, (-w) % a, 0, (-h) % a), mode="replicate")
                out, bpp, _ = self._rd(model, x, torch.tensor([q], device=device))
                x_hat = out["x_hat"][..., :h, :w].clamp(0, 1)
                mse = F.mse_loss(torch.round(x_hat * 255), torch.round(x[..., :h, :w] * 255)).item()
                bpps.append(float(bpp) * x.shape[2] * x.shape[3] / (h * w))
                psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
            rows.append({"quality": q + 1, "bpp": round(sum(bpps) / len(bpps), 4), "psnr": round(sum(psnrs) / len(psnrs), 3)})
        model.train(was_training)
        return rows

    def export(self, model, cfg: TrainConfig, out: Path, record: dict, history: list) -> None:
        from .. import registry

        vals = [h["val"] for h in validations(self, history)]
        qualities = [cfg.quality] if cfg.quality else list(range(1, model.qualities + 1))
        meta = {
            "name": model_name(cfg.out),
            "task": "codec",
            "architecture": model.config(),
            "qualities": qualities,
            "default_quality": codec_model.default_quality(model.lambdas, qualities),
            "training": {**record, "loss": "lambda*255^2*MSE + bpp", "lr": cfg.lr},
            "validation": {"images": [str(p.name) for p in self._val_files(cfg)], "estimated_rd": vals[-1] if vals else None,
                           "rate": "code length of the rounded latents"},
        }
        device = next(model.parameters()).device
        tensors = codec_model.export_tensors(model.cpu())
        model.to(device)
        registry.save(tensors, meta, Path(out) / f"{meta['name']}.safetensors")

    def _val_files(self, cfg):
        from .data import list_images

        files = list_images(cfg.data)
        return files[len(files) - cfg.holdout :] if cfg.holdout < len(files) else []


def model_name(out) -> str:
    """A codec's name: its output folder's, made valid for .lat files (format.normalise_name: 'my
    model' -> 'my-model'); the files it writes carry this name."""
    from .. import format as latformat

    name = Path(out).name
    return name if latformat.valid_name(name) else latformat.normalise_name(name)


def load_codec_run(path) -> tuple[dict, TrainConfig, torch.nn.Module]:
    """A codec checkpoint as (its state, its recipe, its model with the saved weights)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrainConfig(**state["config"])
    model = CodecTask().build(cfg)
    model.load_state_dict(state["model"])
    return state, cfg, model


def get_task(cfg: TrainConfig):
    if cfg.task == "codec":
        return CodecTask()
    if cfg.task == "denoise":
        from .denoise_task import DenoiseTask

        return DenoiseTask(cfg)
    if cfg.task == "autoencoder":
        from .family_task import FamilyTask

        return FamilyTask(cfg)
    raise ValueError(f"unknown task {cfg.task!r}")

"""Training the codec (`aecli train --task codec`): its options, its task for the training loop
(aecli/train/loop.py), and reading a codec checkpoint back (scripts/extend_qualities.py, ...).

Rate-distortion training: loss = lambda * 255^2 * MSE + bpp, one lambda per quality level, the level
of each sample of a batch drawn at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import format as latformat
from .. import registry
from ..errors import UserError
from ..train.checkpoint import validations
from ..train.config import Asked, TrainConfig, ints, require_positive
from ..train.data import CropDataset, list_images
from ..train.init import source_architecture
from ..train.task import Task
from . import model as codec_model

KINDS = tuple(codec_model.KINDS)  # the first is the default
DEFAULT_CHANNELS = "64,128"


@dataclass
class CodecOptions:
    """The codec's recipe; in a checkpoint's "config": n, m, quality, gain_lr_scale, and extra's
    lambdas and nh (train/config.py)."""

    n: int = 64
    m: int = 128
    quality: int | None = None  # train one quality level only
    gain_lr_scale: float = 10.0  # learning-rate multiplier of the per-quality gain vectors
    lambdas: list[float] | None = None  # the run's levels (None in checkpoints from before they were recorded)
    nh: int | None = None  # the hyper width of a widened model (scripts/widen_codec.py), else n

    def record(self) -> dict:
        extra = {k: v for k, v in (("lambdas", self.lambdas), ("nh", self.nh)) if v is not None}
        return {"n": self.n, "m": self.m, "quality": self.quality, "gain_lr_scale": self.gain_lr_scale, "extra": extra}

    @classmethod
    def from_record(cls, record: dict) -> CodecOptions:
        extra = record.get("extra") or {}
        own = {k: record[k] for k in ("n", "m", "quality", "gain_lr_scale") if k in record}
        return cls(**own, lambdas=extra.get("lambdas"), nh=extra.get("nh"))


class CodecTask(Task):
    name = "codec"
    Options = CodecOptions
    DEFAULTS = {"steps": 100_000, "batch_size": 8, "patch": 128, "lr": 1e-4}
    # fine-tuning a trained model (--init): a lower learning rate and far fewer steps than from scratch
    # (the recipe of scripts/finetune_aerials.sh)
    FINETUNE = {"steps": 5000, "batch_size": 4, "patch": 256, "lr": 3e-5}
    # validation rates are code lengths of the rounded latents (eval mode); earlier validations took
    # the likelihoods at noisy latents, which overstates low rates, and are redone at export
    validation_method = "rounded"
    USE = "aecli compress --model {m} photo.png  (aecli decompress --model {m} photo.lat)"

    # -- the command line ------------------------------------------------------------------------

    @classmethod
    def recipe(cls, a: Asked) -> tuple[Asked, CodecOptions]:
        """The kind, the widths N,M and the quality levels (with --init, those of the model it starts from)."""
        if a.sigma_range is not None or a.blocks is not None:
            raise UserError("--sigma-range and --blocks are for --task denoise")
        model, channels, arch = a.model or KINDS[0], a.channels, None
        if a.init is not None:  # fine-tuning: the source's kind, widths and quality levels
            arch = _source(a.init, a.model, a.channels, a.quality)
            model, channels = arch["kind"], f"{arch['n']},{arch['m']}"
        levels = codec_model.LAMBDAS
        if a.quality is not None and not 1 <= a.quality <= len(levels):
            raise UserError(f"--quality must be 1..{len(levels)}")
        widths = ints(channels or DEFAULT_CHANNELS, "--channels must be two integers N,M such as 64,128")
        if len(widths) != 2:
            raise UserError("--channels must be two integers N,M such as 64,128")
        # the levels go into the recipe, so that a resumed run keeps them whatever the default becomes
        if arch is not None:
            lambdas, nh = [float(v) for v in arch["lambdas"]], arch.get("nh") or None
        else:
            lambdas, nh = [levels[a.quality - 1]] if a.quality is not None else list(levels), None
        return replace(a, model=model), CodecOptions(n=widths[0], m=widths[1], quality=a.quality, lambdas=lambdas, nh=nh)

    @classmethod
    def check(cls, a: Asked, options: CodecOptions) -> None:
        require_positive(a.steps, a.batch_size, a.patch, options.n, options.m)
        if a.patch % 64 and a.model in ("hyperprior", "checkerboard"):
            raise UserError(f"--patch must be a multiple of 64 for the {a.model} codec")

    @classmethod
    def notes(cls, cfg: TrainConfig) -> list[str]:
        name = Path(cfg.out).name
        if latformat.valid_name(name):
            return []
        return [f"note: '{name}' is not a model name a .lat file can hold ({latformat.NAME_RULE}): "
                f"the model is exported as '{latformat.normalise_name(name)}'"]

    # -- training --------------------------------------------------------------------------------

    def dataset(self, cfg: TrainConfig) -> CropDataset:
        return CropDataset(cfg.data, cfg.patch, holdout=cfg.holdout)

    def lambdas(self, cfg: TrainConfig) -> tuple[float, ...]:
        """The run's levels: recorded in its recipe; a checkpoint from before they were recorded has
        CompressAI's eight."""
        o = cfg.options
        if o.lambdas:
            return tuple(float(v) for v in o.lambdas)
        if o.quality:
            return (codec_model.COMPRESSAI_LAMBDAS[o.quality - 1],)
        return codec_model.COMPRESSAI_LAMBDAS

    def build(self, cfg: TrainConfig):
        o = cfg.options
        return codec_model.build({"kind": cfg.model, "n": o.n, "m": o.m, "lambdas": self.lambdas(cfg), "nh": o.nh})

    GAINS = ("gain", "inv_gain", "hgain", "inv_hgain")

    def optimizers(self, model, cfg: TrainConfig):
        """Adam on the network, Adam with a larger step on the per-quality gains, Adam on the quantiles."""
        named = list(model.named_parameters())
        main = [p for n, p in named if not n.endswith("quantiles") and n not in self.GAINS]
        gains = [p for n, p in named if n in self.GAINS]
        aux = [p for n, p in named if n.endswith("quantiles")]
        groups = [{"params": main}, {"params": gains, "lr_scale": cfg.options.gain_lr_scale}]
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
        vals = [h["val"] for h in validations(self, history)]
        qualities = [cfg.options.quality] if cfg.options.quality else list(range(1, model.qualities + 1))
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
        files = list_images(cfg.data)
        return files[len(files) - cfg.holdout :] if cfg.holdout < len(files) else []

    # -- what the first and last lines say ---------------------------------------------------------

    def describe(self, cfg: TrainConfig) -> str:
        o = cfg.options
        levels = len(o.lambdas or ()) or (1 if o.quality else 8)
        return f"a {cfg.model} codec (N={o.n}, M={o.m}, {levels} quality level{'s' * (levels != 1)})"

    def figures(self, val) -> str | None:
        """bpp and PSNR at the lowest, the default and the highest quality."""
        if not isinstance(val, list):
            return None
        rows = [val[0]] + ([val[len(val) // 2]] if len(val) > 2 else []) + ([val[-1]] if len(val) > 1 else [])
        return ", ".join(f"quality {r['quality']} {r['bpp']:.3f} bpp {r['psnr']:.2f} dB" for r in rows)

    def far_from(self, val, bundled: dict, name: str) -> str | None:
        """Half the qualities or more 2 dB below the bundled model's at no fewer bits."""
        if not (isinstance(val, list) and val):
            return None
        ref = {r["quality"]: r for r in ((bundled.get("validation") or {}).get("estimated_rd") or [])}
        worse = [r for r in val if r.get("quality") in ref and r["psnr"] < ref[r["quality"]]["psnr"] - 2
                 and r["bpp"] > 0.8 * ref[r["quality"]]["bpp"]]
        if not worse or len(worse) < len(val) / 2:
            return None
        r = worse[len(worse) // 2]
        b = ref[r["quality"]]
        return (f"quality {r['quality']} gives {r['bpp']:.2f} bpp at {r['psnr']:.1f} dB here, '{name}' "
                f"{b['bpp']:.2f} bpp at {b['psnr']:.1f} dB on its own validation images")


def _recipe_architecture(cfg: dict) -> dict:
    """The architecture a codec checkpoint's saved recipe builds ({} for another task's)."""
    if cfg.get("task", "codec") != "codec":
        return {}
    extra = cfg.get("extra") or {}
    lambdas = extra.get("lambdas") or list(codec_model.COMPRESSAI_LAMBDAS)
    arch = {"kind": cfg.get("model", "hyperprior"), "n": cfg.get("n", 64), "m": cfg.get("m", 128), "lambdas": lambdas}
    return {**arch, **({"nh": extra["nh"]} if extra.get("nh") else {})}


def _source(init: str, model: str | None, channels: str | None, quality: int | None) -> dict:
    """The architecture of the codec --init starts from (kind, n, m, lambdas, nh): the new model is
    built like it, so that every tensor carries over, the quality levels included."""
    arch = source_architecture(init, "codec", _recipe_architecture)
    if arch.get("kind") not in KINDS or not arch.get("lambdas"):
        raise UserError(f"--init {init}: its architecture is not recorded (give a codec model or a codec checkpoint)")
    if model is not None and model != arch["kind"]:
        raise UserError(f"--init {init} is a {arch['kind']} codec: leave out --model, or give --model {arch['kind']}")
    if channels is not None:
        raise UserError(f"--channels: a fine-tuned codec keeps the widths of --init {init} ({arch['n']},{arch['m']})")
    if quality is not None:
        raise UserError("--quality: a fine-tuned codec keeps every quality level of the model it starts from")
    return arch


def model_name(out) -> str:
    """A codec's name: its output folder's, made valid for .lat files (format.normalise_name: 'my
    model' -> 'my-model'); the files it writes carry this name."""
    name = Path(out).name
    return name if latformat.valid_name(name) else latformat.normalise_name(name)


def codec_config(record: dict) -> TrainConfig:
    """A codec checkpoint's "config" (flat, see train/config.py) as a TrainConfig."""
    return TrainConfig.from_record(record, CodecOptions)


def load_codec_run(path) -> tuple[dict, TrainConfig, torch.nn.Module]:
    """A codec checkpoint as (its state, its recipe, its model with the saved weights)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = codec_config(state["config"])
    model = CodecTask().build(cfg)
    model.load_state_dict(state["model"])
    return state, cfg, model

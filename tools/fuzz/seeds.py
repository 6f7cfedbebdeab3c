"""The seeds the mutations start from: the test-vector model and untrained models built here, the
valid `.lat` files they write (--target lat), and their model files as bytes (--target model)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aecli import format as latformat  # (stdlib only, cheap)

from ..paths import ROOT
from .harness import cli_decode

VECTORS = ROOT / "tests" / "vectors"
HP_MODEL = "vector-hp"  # the test-vector hyperprior model (n=8, m=12)
FP_MODEL = "fuzz-fp"  # an untrained factorized model built here, to reach that decode branch
CB_MODEL = "fuzz-cb"  # an untrained checkerboard model built here (two-pass decode, four streams)


DN_MODEL = "fuzz-dn"  # a tiny untrained U-Net denoiser built here, for the denoiser's loader
MODEL_SEEDS = (HP_MODEL, FP_MODEL, CB_MODEL, DN_MODEL)


# --------------------------------------------------------------------------- models


def prepare_models(folder: Path) -> Path:
    """Put vector-hp (copied), fuzz-fp and fuzz-cb (untrained factorized and checkerboard models)
    in `folder`."""
    import torch

    from aecli import registry
    from aecli.codec import model as codec_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ext in (".safetensors", ".json"):
        shutil.copy(VECTORS / f"{HP_MODEL}{ext}", folder / f"{HP_MODEL}{ext}")
    for name, kind, seed in ((FP_MODEL, "factorized", 2024), (CB_MODEL, "checkerboard", 2025)):
        if (folder / f"{name}.safetensors").exists():
            continue
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        m = codec_model.build({"kind": kind, "n": 8, "m": 12, "lambdas": list(codec_model.COMPRESSAI_LAMBDAS[:3])})
        with torch.no_grad():  # large gains, so that it codes many symbols (as tests/conftest.py)
            m.gain.copy_(torch.linspace(1.0, 4.0, 3).unsqueeze(1).expand_as(m.gain))
            m.inv_gain.copy_(-m.gain)
            if kind == "checkerboard":  # a context that matters (a new one starts at zero)
                m.ep[-1].weight.normal_(0, 0.1)
                m.ep[-1].bias.normal_(0, 0.1)
        torch.random.set_rng_state(state)
        meta = {"name": name, "task": "codec", "architecture": m.config(), "qualities": [1, 2, 3],
                "default_quality": 2}
        registry.save(codec_model.export_tensors(m), meta, folder / f"{name}.safetensors")
    return folder


def prepare_denoiser(folder: Path) -> None:
    """fuzz-dn in `folder`: an untrained U-Net (widths 8, 16; one block), as tests/conftest.py makes."""
    import torch

    from aecli import registry
    from aecli.denoise import model as dn_model

    if (folder / f"{DN_MODEL}.safetensors").exists():
        return
    state = torch.random.get_rng_state()
    torch.manual_seed(4321)
    m = dn_model.build({"widths": [8, 16], "blocks": 1})
    torch.random.set_rng_state(state)
    meta = {"name": DN_MODEL, "task": "denoise", "architecture": m.config(), "noise": {"sigma_range": [0, 50]}}
    registry.save(dict(m.state_dict()), meta, folder / f"{DN_MODEL}.safetensors")


def picture(h: int, w: int, channels: int, kind: str, rng) -> "np.ndarray":  # noqa: F821
    import numpy as np

    if kind == "noise":  # white noise at full range: large residuals, escapes
        img = rng.integers(0, 256, (h, w, channels))
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(np.sin(xx / 5.0 + c) + np.cos(yy / 3.0 - c)) * 60 + 128 for c in range(channels)], axis=2)
        img = img + rng.normal(0, 8, (h, w, channels))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


# --------------------------------------------------------------------------- .lat files (--target lat)


# (height, width, mode, quality, model, picture)
SEED_SPECS = [
    (1, 1, "RGB", 2, HP_MODEL, "photo"),
    (1, 1, "L", 1, HP_MODEL, "photo"),
    (1, 1, "RGBA", 3, HP_MODEL, "photo"),
    (1, 1, "LA", 2, HP_MODEL, "noise"),
    (2, 3, "RGB", 3, HP_MODEL, "noise"),
    (7, 1, "L", 2, HP_MODEL, "photo"),
    (1, 9, "RGB", 1, HP_MODEL, "photo"),
    (13, 17, "RGB", 3, HP_MODEL, "noise"),
    (17, 13, "RGBA", 1, HP_MODEL, "photo"),
    (31, 33, "L", 3, HP_MODEL, "photo"),
    (63, 65, "RGB", 3, HP_MODEL, "noise"),
    (64, 64, "LA", 2, HP_MODEL, "photo"),
    (65, 130, "RGB", 1, HP_MODEL, "photo"),
    (100, 37, "RGBA", 3, HP_MODEL, "noise"),
    (1, 1, "RGB", 2, FP_MODEL, "photo"),
    (20, 30, "RGB", 3, FP_MODEL, "noise"),
    (33, 17, "L", 1, FP_MODEL, "photo"),
    (16, 48, "RGBA", 2, FP_MODEL, "photo"),
    (9, 40, "LA", 3, FP_MODEL, "noise"),
    (1, 1, "RGB", 2, CB_MODEL, "photo"),
    (21, 35, "RGB", 3, CB_MODEL, "noise"),
    (40, 33, "L", 1, CB_MODEL, "photo"),
    (64, 80, "RGBA", 3, CB_MODEL, "photo"),
    (17, 70, "LA", 2, CB_MODEL, "noise"),
]


@dataclass
class Seed:
    name: str
    data: bytes
    lat: latformat.LatFile


# fitted files: (height, width, mode, quality, picture); short fits, busy latents at quality 8
FITTED_SPECS = [
    (1, 1, "RGB", 4, "photo"),
    (5, 7, "L", 8, "noise"),
    (17, 13, "RGBA", 8, "photo"),
    (24, 32, "RGB", 8, "noise"),
    (33, 20, "LA", 6, "photo"),
]
FITTED_ITERATIONS = 30


def build_corpus() -> list[Seed]:
    """The valid seed files; the models must be findable (AECLI_MODEL_PATH)."""
    import numpy as np

    from aecli.codec.api import load_codec
    from aecli.images.image import Image

    rng = np.random.default_rng(12345)
    small = (VECTORS / "small.lat").read_bytes()
    seeds = [Seed("small.lat", small, latformat.unpack(small))]
    meta = (VECTORS / "small-meta.lat").read_bytes()
    seeds.append(Seed("small-meta.lat", meta, latformat.unpack(meta)))
    for h, w, mode, q, model, kind in SEED_SPECS:
        codec = load_codec(model)
        pixels = picture(h, w, 1 if mode in ("L", "LA") else 3, kind, rng)
        alpha = picture(h, w, 1, "photo", rng) if mode in ("RGBA", "LA") else None
        data = codec.compress(Image(pixels, alpha, mode, 8), q)
        seeds.append(Seed(f"{model}-{w}x{h}-{mode}-q{q}-{kind}", data, latformat.unpack(data)))
    from aecli.codec.fitted import codec as fitted

    for i, (h, w, mode, q, kind) in enumerate(FITTED_SPECS):  # fitted files (format version 3): a few iterations each,
        # in turn of the structure long fits write (the newest) and the one short fits write (codec.SHORT_VERSION)
        pixels = picture(h, w, 1 if mode in ("L", "LA") else 3, kind, rng)
        alpha = picture(h, w, 1, "photo", rng) if mode in ("RGBA", "LA") else None
        version = fitted.header.VERSION if i % 2 == 0 else fitted.SHORT_VERSION
        data = fitted.compress(Image(pixels, alpha, mode, 8), q, iterations=FITTED_ITERATIONS, version=version).data
        seeds.append(Seed(f"fit-v{version}-{w}x{h}-{mode}-q{q}-{kind}", data, latformat.unpack(data)))
    for s in seeds:  # every seed must decode, or the corpus (or the codec) is broken
        cli_decode(s.lat)
    return seeds


# --------------------------------------------------------------------------- model files (--target model)


@dataclass
class ModelSeed:
    name: str
    meta: dict
    weights: bytes
    lat: bytes | None  # a file this model wrote (codec models)


def model_seeds(folder: Path) -> list[ModelSeed]:
    """The seed models (their files as bytes), each codec with a 17x13 file it wrote."""
    import numpy as np

    from aecli.codec.api import load_codec
    from aecli.images.image import Image

    prepare_denoiser(folder)
    rng = np.random.default_rng(7)
    seeds = []
    for name in MODEL_SEEDS:
        meta = json.loads((folder / f"{name}.json").read_text())
        lat = None
        if meta["task"] == "codec":
            img = Image(picture(13, 17, 3, "photo", rng), None, "RGB", 8)
            lat = load_codec(name).compress(img, meta["default_quality"], scale=8)
        seeds.append(ModelSeed(name, meta, (folder / f"{name}.safetensors").read_bytes(), lat))
    return seeds

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

VECTORS = Path(__file__).parent / "vectors"


def run_together(*calls: tuple[list, dict]) -> list[subprocess.CompletedProcess]:
    """subprocess.run(args, **kwargs) for each (args, kwargs), all at once; their results in order.
    Most of a short aecli process is Python's start-up and torch's import, one core each: two such
    processes side by side take little longer than one."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [f.result() for f in [pool.submit(subprocess.run, args, **kw) for args, kw in calls]]


def make_tiny_codec(kind: str, name: str, out: Path, seed: int = 1234):
    """An untrained tiny codec model with large gains, so that it codes many symbols."""
    import torch

    from aecli import registry
    from aecli.codec import model as codec_model

    torch.manual_seed(seed)
    m = codec_model.build({"kind": kind, "n": 8, "m": 12, "lambdas": codec_model.COMPRESSAI_LAMBDAS[:3]})
    with torch.no_grad():
        m.gain.copy_(torch.linspace(1.0, 4.0, 3).unsqueeze(1).expand_as(m.gain))
        m.inv_gain.copy_(-m.gain)
        if kind == "checkerboard":  # a context model that matters (a new one starts at zero)
            m.ep[-1].weight.normal_(0, 0.1)
            m.ep[-1].bias.normal_(0, 0.1)
    meta = {"name": name, "task": "codec", "architecture": m.config(), "qualities": [1, 2, 3], "default_quality": 2}
    return registry.save(codec_model.export_tensors(m), meta, out / f"{name}.safetensors")


def make_tiny_denoiser(name: str, out: Path, seed: int = 4321, widths=(8, 16), estimator: dict | None = None):
    """An untrained tiny U-Net denoiser (2 scales, 1 block): a fixed, non-trivial function; with
    `estimator`, a blind one with its own noise-level map (as the bundled dn-real)."""
    import torch

    from aecli import registry
    from aecli.denoise import model as dn_model

    torch.manual_seed(seed)
    m = dn_model.build({"widths": list(widths), "blocks": 1, **({"estimator": estimator} if estimator else {})})
    meta = {"name": name, "task": "denoise", "architecture": m.config(), "noise": {"sigma_range": [0, 50]}}
    return registry.save(dict(m.state_dict()), meta, out / f"{name}.safetensors")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    make_tiny_codec("hyperprior", "tiny-hp", d)
    make_tiny_codec("checkerboard", "tiny-cb", d)
    make_tiny_codec("factorized", "tiny-fp", d)
    make_tiny_denoiser("tiny-dn", d)
    make_tiny_denoiser("tiny-dn-real", d, estimator={"widths": [4, 8], "layers": 1})
    shutil.copy(VECTORS / "vector-hp.safetensors", d)
    shutil.copy(VECTORS / "vector-hp.json", d)
    return d


@pytest.fixture(autouse=True)
def _model_path(model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("AECLI_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("AECLI_HOME", str(tmp_path / "home"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def photo_like(h: int, w: int, rng, channels: int = 3) -> np.ndarray:
    """A smooth image with some texture (more realistic than white noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(np.sin(xx / 7.0 + c) + np.cos(yy / 5.0 - c)) * 60 + 128 for c in range(channels)]
    img = np.stack(base, axis=2) + rng.normal(0, 8, (h, w, channels))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def make_digits(root, per_class: int):
    """Two classes of 16x16 gray 'digits' under root/bar and root/dash: a vertical and a horizontal bar."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    for lab in ("bar", "dash"):
        (root / lab).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 30, (16, 16)).astype(np.uint8)
            if lab == "bar":
                a[3:13, 6:10] = 220
            else:
                a[6:10, 3:13] = 220
            PILImage.fromarray(a).save(root / lab / f"{i:02d}.png")
    return root


def make_training_images(d, rng):
    """A small training folder: three photo-like images and, in a subfolder, one smaller than a crop."""
    from PIL import Image as PILImage

    (d / "sub").mkdir(parents=True)
    for i in range(3):
        PILImage.fromarray(photo_like(70 + i, 90, rng)).save(d / f"{i}.png")
    PILImage.fromarray(photo_like(50, 60, rng)).save(d / "sub" / "small.jpg")
    return d

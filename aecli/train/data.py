"""Training data: every image under a folder, held in memory, served as random crops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm", ".gif"}


def list_images(root: str | Path) -> list[Path]:
    root = Path(root)
    if root.is_file():
        return [root]
    files = [
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files)


def _reason(exc: Exception) -> str:
    from PIL import UnidentifiedImageError

    from ..imageio import error_reason

    return "not a readable image" if isinstance(exc, UnidentifiedImageError) else error_reason(exc)


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


class CropDataset:
    """Random crops with random flips from a fixed list of images, driven by a torch.Generator.

    `holdout` images (the last ones in sorted order) are kept apart for validation.
    """

    def __init__(self, root: str | Path, patch: int, holdout: int = 0, grayscale: bool = False):
        self.patch = patch
        self.skipped: list[str] = []  # "path: reason" of files that could not be read
        loaded = []
        for f in list_images(root):
            try:
                loaded.append((f, self._load(f, grayscale)))
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a training run
                self.skipped.append(f"{f}: {_reason(exc)}")
        if not loaded:
            first = f" ({self.skipped[0]})" if self.skipped else ""
            raise UserError(f"no readable images found under {root}{first}")
        for line in self.skipped:
            print(f"aecli: warning: skipping {line}", file=sys.stderr, flush=True)
        if holdout >= len(loaded):
            holdout = 0
        cut = len(loaded) - holdout
        self.files = [f for f, _ in loaded[:cut]]
        self.val_files = [f for f, _ in loaded[cut:]]
        self.images = [t for _, t in loaded[:cut]]
        self.val_images = [t for _, t in loaded[cut:]]

    def _load(self, path: Path, grayscale: bool) -> torch.Tensor:
        arr = load_rgb(path)
        if grayscale:
            arr = np.round(arr @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)[..., None]
        t = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1)  # C, H, W uint8
        return _padded(t, self.patch)  # too small: padded by replication

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int, gen: torch.Generator) -> torch.Tensor:
        """(size, C, patch, patch) float in [0, 1]."""
        return self.batch_u8(size, gen).float().div_(255.0)

    def batch_u8(self, size: int, gen: torch.Generator) -> torch.Tensor:
        """(size, C, patch, patch) uint8: the same crops as `batch`, four times smaller to move to a GPU."""
        p = self.patch
        out = []
        idx = torch.randint(len(self.images), (size,), generator=gen).tolist()
        for i in idx:
            img = self.images[i]
            h, w = img.shape[1:]
            top = int(torch.randint(h - p + 1, (1,), generator=gen))
            left = int(torch.randint(w - p + 1, (1,), generator=gen))
            crop = img[:, top : top + p, left : left + p]
            flips = torch.randint(2, (2,), generator=gen).tolist()
            if flips[0]:
                crop = crop.flip(2)
            if flips[1]:
                crop = crop.flip(1)
            out.append(crop)
        return torch.stack(out)


# ---- noisy/clean pairs (fine-tuning a denoiser to one's own camera) ----------------------------

PAIR_SUFFIXES = (("_noisy", "_clean"), ("_real", "_mean"))  # NAME_noisy.png + NAME_clean.png, ...


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(noisy, clean) image pairs under `root`: the same relative name under noisy/ and clean/, or
    NAME_noisy.EXT beside NAME_clean.EXT (also NAME_real/NAME_mean, as in real-noise test sets).
    An empty list when the folder holds no pairs (then it is a folder of clean images)."""
    root = Path(root)
    if root.is_file():
        return []
    if (root / "noisy").is_dir() and (root / "clean").is_dir():
        clean = {p.relative_to(root / "clean").with_suffix(""): p for p in list_images(root / "clean")}
        found = [(p, clean.get(p.relative_to(root / "noisy").with_suffix(""))) for p in list_images(root / "noisy")]
        return [(n, c) for n, c in found if c is not None]
    files = {p.with_suffix(""): p for p in list_images(root)}
    out = []
    for stem, p in sorted(files.items()):
        for noisy_tag, clean_tag in PAIR_SUFFIXES:
            if stem.name.endswith(noisy_tag):
                c = files.get(stem.with_name(stem.name[: -len(noisy_tag)] + clean_tag))
                if c is not None:
                    out.append((p, c))
    return out


class PairDataset:
    """Aligned random crops (same place, same flips) of noisy/clean pairs, as one 6-channel uint8 batch:
    channels 0-2 the noisy crop, 3-5 the clean one. The last `holdout` pairs are kept for validation."""

    def __init__(self, root: str | Path, patch: int, holdout: int = 0):
        self.patch = patch
        self.skipped: list[str] = []
        loaded = []
        for noisy, clean in find_pairs(root):
            try:
                a, b = load_rgb(noisy), load_rgb(clean)
            except Exception as exc:  # noqa: BLE001 - one bad pair must not stop a run
                self.skipped.append(f"{noisy}: {_reason(exc)}")
                continue
            if a.shape != b.shape:
                self.skipped.append(f"{noisy}: {a.shape[1]}x{a.shape[0]} but its clean image is {b.shape[1]}x{b.shape[0]}")
                continue
            t = torch.from_numpy(np.concatenate([a, b], axis=2)).permute(2, 0, 1).contiguous()
            loaded.append((noisy, _padded(t, patch)))
        if not loaded:
            raise UserError(f"no readable noisy/clean pairs under {root}" + (f" ({self.skipped[0]})" if self.skipped else ""))
        for line in self.skipped:
            print(f"aecli: warning: skipping {line}", file=sys.stderr, flush=True)
        holdout = holdout if holdout < len(loaded) else 0
        cut = len(loaded) - holdout
        self.files = [f for f, _ in loaded[:cut]]
        self.val_files = [f for f, _ in loaded[cut:]]
        self.images = [t for _, t in loaded[:cut]]
        self.val_images = [t for _, t in loaded[cut:]]

    def __len__(self) -> int:
        return len(self.images)

    batch = CropDataset.batch
    batch_u8 = CropDataset.batch_u8


def _padded(t: torch.Tensor, patch: int) -> torch.Tensor:
    """A C, H, W uint8 image at least `patch` on each side (edge replication)."""
    h, w = t.shape[1:]
    if h >= patch and w >= patch:
        return t
    ph, pw = max(0, patch - h), max(0, patch - w)
    return torch.nn.functional.pad(t[None].float(), (0, pw, 0, ph), mode="replicate")[0].to(torch.uint8)

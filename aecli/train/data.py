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

    from ..imageio import _reason as describe

    return "not a readable image" if isinstance(exc, UnidentifiedImageError) else describe(exc)


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
        h, w = t.shape[1:]
        if h < self.patch or w < self.patch:  # too small: pad by reflection/replication
            ph, pw = max(0, self.patch - h), max(0, self.patch - w)
            t = torch.nn.functional.pad(t[None].float(), (0, pw, 0, ph), mode="replicate")[0].to(torch.uint8)
        return t

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

"""Image folders as tensors for the autoencoder family.

Every image below a folder (recursive, sorted, hidden files skipped), converted to the model's
channels (1 = gray, 3 = RGB; alpha dropped) and resized to its height x width, as uint8
(N, C, H, W). The label of an image is its first subfolder under the root ('' for images at
the root): `embed --plot` colours by it and the benchmarks use it as the class.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError, reason
from ..images.walk import walk_images

MAX_SIDE = 256  # family models are for small images; bigger inputs are resized down to this
DEFAULT_SIDE = 64  # the side used when the first image is larger than MAX_SIDE and no --image-size is given


@dataclass
class ImageSet:
    pixels: np.ndarray  # (N, C, H, W) uint8
    paths: list[Path]
    labels: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" of files that could not be read

    def __len__(self) -> int:
        return len(self.paths)

    def floats(self):
        """(N, C, H, W) float32 torch tensor on the 0..1 scale."""
        import torch

        return torch.from_numpy(self.pixels).float().div_(255.0)


def list_files(src: Path) -> list[Path]:
    """The images below folder `src` (images.walk), or `src` itself when it is a file."""
    return walk_images(src, file_ok=True)


def _label(path: Path, root: Path) -> str:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return ""
    return parts[0] if len(parts) > 1 else ""


def infer_shape(first: Path, image_size: int | None, grayscale: bool) -> tuple[int, int, int]:
    """(C, H, W) for a new model: --image-size (square) or the first image's size; gray when asked or when
    the first image has one channel."""
    from PIL import Image

    try:
        with _open(first) as im:
            w, h = im.size
            gray_source = im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") or (
                im.mode == "P" and _palette_is_gray(im))
    except UserError as exc:
        raise UserError(f"cannot read {exc}") from None
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"cannot read {first}: {_reason(exc, first)}") from None
    c = 1 if grayscale or gray_source else 3
    if image_size:
        return (c, int(image_size), int(image_size))
    if max(h, w) > MAX_SIDE:
        return (c, DEFAULT_SIDE, DEFAULT_SIDE)
    return (c, h, w)


def _palette_is_gray(im) -> bool:
    pal = im.getpalette() or []
    rgb = np.array(pal[: len(pal) // 3 * 3]).reshape(-1, 3)
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def load_one(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image as (C, H, W) uint8 in the given shape; UserError when it is not a readable image."""
    from PIL import Image, ImageOps

    c, h, w = shape
    try:
        with _open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                a = np.asarray(im, dtype=np.float64)
                top = 65535.0 if a.max() > 255 else 255.0
                im = Image.fromarray(np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8), "L")
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{path}: not a readable image ({_reason(exc, path)})") from None
    return a[None] if c == 1 else a.transpose(2, 0, 1)


@contextmanager
def _open(path: Path):
    """Image.open, with Pillow's decompression-bomb warning (over Image.MAX_IMAGE_PIXELS, about 89
    megapixels) made an error, and one-line errors for a missing file or a folder."""
    import warnings

    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not an image")
    if not path.exists():
        raise UserError(f"{path}: not found")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            yield im


def _reason(exc: BaseException, path: Path) -> str:
    """errors.reason, without the file's name (the message names it first)."""
    return reason(exc).replace(f" '{path}'", "")


def load_folder(src: Path, shape: tuple[int, int, int], *, quiet: bool = False, label: str = "load") -> ImageSet:
    """Every readable image below `src` (or the one file `src`) in `shape`; unreadable files are reported
    and skipped. UserError when none is left, or when `src` is one file that cannot be read."""
    from ..progress import progress_bar

    src = Path(src)
    files = list_files(src)
    if not files:
        raise UserError(f"no images found under {src}")
    root = src if src.is_dir() else src.parent
    out = np.empty((len(files), *shape), dtype=np.uint8)
    kept: list[Path] = []
    skipped: list[str] = []
    with progress_bar(None if not quiet else False) as bar:
        job = bar.add_task(label, total=len(files), stats="")
        for f in files:
            try:
                out[len(kept)] = load_one(f, shape)
                kept.append(f)
            except UserError as exc:
                if src.is_file():  # one file: its own error, not a warning plus "no readable images"
                    raise
                skipped.append(str(exc))
                if not quiet:
                    print(f"aecli: warning: skipped {exc}", file=sys.stderr)
            bar.advance(job)
    if not kept:
        raise UserError(f"no readable images under {src}")
    return ImageSet(out[: len(kept)], kept, [_label(p, root) for p in kept], skipped)

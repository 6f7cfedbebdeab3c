"""Write the idx (.gz) image sets of ../shared/data as PNG folders, one subfolder per label.

    python benchmarks/idx_folders.py --src ../shared/data/FashionMNIST --out /tmp/aecli-data/fmnist
      -> OUT/train/<label>/<index>.png (60000) and OUT/test/<label>/<index>.png (10000)

aecli's family commands take image folders; this turns the datasets into that form once.
Existing complete folders are kept (a marker file records the count).
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

FMNIST_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_split(images: np.ndarray, labels: np.ndarray, out: Path, names: list[str] | None) -> None:
    from PIL import Image

    marker = out / ".complete"
    if marker.exists() and marker.read_text().strip() == str(len(images)):
        return
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = out / (names[lab] if names else str(lab))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(d / f"{i:05d}.png", compress_level=1)
    marker.write_text(str(len(images)))


def convert(src: Path, out: Path, names: list[str] | None = None) -> dict[str, Path]:
    done = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img, lab = src / f"{prefix}-images-idx3-ubyte.gz", src / f"{prefix}-labels-idx1-ubyte.gz"
        if img.exists() and lab.exists():
            write_split(read_idx(img), read_idx(lab), out / split, names)
            done[split] = out / split
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--names", choices=["fmnist", "digits"], default=None, help="label folder names (default: numbers)")
    a = ap.parse_args()
    names = FMNIST_NAMES if a.names == "fmnist" else None
    for split, path in convert(a.src, a.out, names).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()

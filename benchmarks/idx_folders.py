"""Write the idx (.gz) image sets of ../shared/data as PNG folders, one subfolder per label.

    python -m benchmarks.idx_folders --src ../shared/data/FashionMNIST --out /tmp/aecli-data/fmnist
      -> OUT/train/<label>/<index>.png (60000) and OUT/test/<label>/<index>.png (10000)

aecli's family commands take image folders; this turns the datasets into that form once.
Existing complete folders are kept (a marker file records the count).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import FMNIST_NAMES, convert


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

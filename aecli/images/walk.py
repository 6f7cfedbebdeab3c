"""The image files below a folder: the one lister of aecli (batches, training data, the family's
folders, evaluation).  Standard library only.

Recursive, sorted by path components, extensions matched case-insensitively, hidden files and
hidden folders (a name starting with '.') skipped, symlinked folders not followed (symlinked
files are listed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import UserError, reason

#: The extensions aecli reads as images (the ones it writes: aecli/images/encode.py, WRITE_EXTS).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm")


def walk_images(root: str | Path, exts: Iterable[str] = IMAGE_EXTS, *, file_ok: bool = False,
                lenient: bool = False) -> list[Path]:
    """Image files (or files with one of ``exts``) below ``root`` (see the module docstring).

    ``file_ok``: a ``root`` that is a file is listed as itself, whatever its extension (a command
    that takes a file or a folder).  Otherwise, and unless ``lenient``, a missing ``root``, one
    that is not a folder and a folder that cannot be read are a UserError.  ``lenient`` (training
    data): those give no files instead, without a word.
    """
    root = Path(root)
    if file_ok and root.is_file():
        return [root]
    if not root.is_dir():
        if lenient:
            return []
        if not root.exists():
            raise UserError(f"input not found: {root}")
        raise UserError(f"{root} is not a directory")
    exts = tuple(exts)

    def onerror(e: OSError) -> None:
        if not lenient:
            raise UserError(f"cannot read directory {e.filename}: {reason(e)}") from e

    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for fn in filenames:
            if fn.startswith("."):
                continue
            if os.path.splitext(fn)[1].lower() in exts:
                p = base / fn
                if p.is_file():
                    found.append(p)
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found

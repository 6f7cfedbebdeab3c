"""What a path argument names: '-' (standard input or output), the same file as another path, a
place inside a folder.  Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

STDIO_NAME_IN = "<stdin>"
STDIO_NAME_OUT = "<stdout>"


def is_stdio(p: str | Path) -> bool:
    """``'-'`` (a str, not a Path): standard input for an input, standard output for an output."""
    return isinstance(p, str) and p == "-"


def same_file(dst: Path, src: str | Path) -> bool:
    """``dst`` and ``src`` are one file: by ``os.path.samefile`` (hard links, symlinks), else by
    their resolved paths (``./x/../x``; a file that does not exist yet).  ``'-'`` is no file."""
    if is_stdio(src):
        return False
    src = Path(src)
    try:
        if os.path.samefile(dst, src):
            return True
    except OSError:
        pass
    try:
        return dst.resolve() == src.resolve()
    except (OSError, RuntimeError):
        return os.path.abspath(dst) == os.path.abspath(src)


def inside(p: Path, folder: Path) -> bool:
    """``p`` is ``folder`` or below it (as written: resolve both first to compare real places)."""
    try:
        p.relative_to(folder)
        return True
    except ValueError:
        return False

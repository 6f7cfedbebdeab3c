"""Replacing a file atomically, and writing every byte into a descriptor.  Standard library only.

``replace_atomically`` writes a temporary file with a unique name (``.NAME.<random>.tmp``) in the
target's folder, flushes and fsyncs it, renames it onto the target and fsyncs the folder, so the
target is either its old self or the complete new file, even after a crash or a power loss.  On
any failure (KeyboardInterrupt included) the temporary file is removed.  The commands' outputs,
exported models and training checkpoints are all written this way.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``, looping on partial writes (``os.write`` may write
    fewer bytes than asked: pipes, signals, some devices).  A write that makes no progress is an
    OSError, as a failed one is."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = os.write(fd, view[done:])
        if n <= 0:
            raise OSError(errno.EIO, f"short write ({done} of {len(view)} bytes written)")
        done += n


def replace_atomically(target: Path, fill: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    """Write ``target`` through ``fill(file)`` on a unique temporary file beside it, fsync'ed and then
    renamed onto it.  ``mode``: the permission bits to give the new file (None: mkstemp's 0o600)."""
    target = Path(target)
    parent = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            try:
                os.chmod(tmp, mode)
            except OSError:
                pass  # e.g. filesystems without permissions; not worth failing for
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(parent)


def fsync_dir(d: Path) -> None:
    """Best effort: make a rename in folder ``d`` durable."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

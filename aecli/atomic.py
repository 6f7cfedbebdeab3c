"""Writing outputs safely: one writer for every file aecli writes (images, .lat files, exported
models, training checkpoints, reports).  Standard library only.

:func:`replace_atomically` writes a temporary file with a unique name (``.NAME.<random>.tmp``) in
the target's folder, flushes and fsyncs it, renames it onto the target and fsyncs the folder, so
the target is either its old self or the complete new file, even after a crash or a power loss.
On any failure (KeyboardInterrupt included) the temporary file is removed.  A process killed
outright (SIGKILL, power loss) cannot remove it: the destination is still untouched or complete,
but a stray ``.<name>.<random>.tmp`` may be left beside it; it is never reused and can be deleted.

:func:`write_output` is what the commands write their outputs with (:func:`check_output` makes
the same checks before any work is done):

* ``write_output('-')``, ``/dev/stdout`` and ``/dev/fd/N`` (process
  substitution) write to that descriptor, every byte (partial writes are
  continued; a write that fails or makes no progress, such as ENOSPC on
  ``/dev/full``, is a UserError); binary data is never written to a terminal.
* An existing character device (``/dev/null``) or FIFO is written *into*, as
  ``cat > path`` does: no temporary file, no rename.  Block devices, sockets
  and directories are refused: only regular files are ever replaced.
* An existing regular file is replaced only with ``force`` (else
  :class:`OutputExists`).
* Regular files are written atomically (:func:`replace_atomically`).
* If the destination is a symlink, the file it points to is replaced (the
  link is kept).
* Permissions: a new file gets ``0o666 & ~umask``; an existing file that is
  replaced keeps its permission bits.
* The destination must not be the same file as any input (checked on the
  resolved paths and with ``os.path.samefile``, so ``./x/../x``, symlinks and
  hard links are caught), even with ``force``.  Missing parent directories
  are created.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from .errors import OutputExists, UserError, reason
from .paths import STDIO_NAME_OUT, is_stdio, same_file


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``, looping on partial writes (``os.write`` may write
    fewer bytes than asked: pipes, signals, some devices).  A write that makes no progress is an
    OSError, as a failed one is."""
    _write_loop(lambda view: os.write(fd, view), data)


def _write_loop(write: Callable[[memoryview], int | None], data: bytes) -> None:
    """Every byte through ``write``, which may write part of what it is given and say how much (a
    stream's write() may also say None: no progress)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = write(view[done:])
        if not n or n < 0:
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


# --------------------------------------------------------------------------
# the commands' outputs


def _umask() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _refuse_terminal(isatty: Callable[[], bool], shown: str) -> None:
    try:
        tty = isatty()
    except (AttributeError, ValueError, OSError):
        return
    if tty:
        raise UserError(f"refusing to write binary data to a terminal ({shown}); redirect it or give an output path")


def _write_stdout(data: bytes) -> None:
    """Every byte to standard output, or a UserError (a broken pipe is left to the caller)."""
    stream = sys.stdout
    if stream is None:
        raise UserError("cannot write <stdout>: no standard output")
    _refuse_terminal(getattr(stream, "isatty", lambda: False), STDIO_NAME_OUT)
    buf = getattr(stream, "buffer", stream)
    try:
        stream.flush()  # what was printed before comes first
        fd = buf.fileno()
    except (AttributeError, ValueError, OSError):  # (io.UnsupportedOperation: an in-memory stream)
        fd = None
    try:
        if fd is None:
            _write_loop(buf.write, data)
            buf.flush()
        else:
            buf.flush()
            write_all(fd, data)  # straight to the descriptor: nothing is left in a buffer to fail at exit
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UserError(f"cannot write {STDIO_NAME_OUT}: {reason(e)}") from e


_FD_PATH = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")


def _stream_fd(dst: str | Path) -> int | None:
    """The descriptor an output names: /dev/stdout (1), /dev/stderr (2), /dev/fd/N or /proc/self/fd/N
    (process substitution); None for any other path."""
    text = str(dst)
    if text in ("/dev/stdout", "/dev/stderr"):
        return 1 if text == "/dev/stdout" else 2
    m = _FD_PATH.fullmatch(text)
    return int(m.group(1)) if m else None


def _write_fd(fd: int, data: bytes, shown: str) -> None:
    """Every byte to descriptor ``fd`` (1: standard output, through sys.stdout)."""
    if fd == 1:
        _write_stdout(data)
        return
    _refuse_terminal(lambda: os.isatty(fd), shown)
    try:
        write_all(fd, data)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise UserError(f"cannot write {shown}: {reason(e)}") from e


def _write_into(path: Path, data: bytes, shown: str) -> None:
    """Write into a character device or a FIFO as `cat > path` does: no temporary file, no rename."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UserError(f"cannot write {shown}: {reason(e)}") from e
    try:
        if fd == 1:  # (only when standard output was closed)
            write_all(fd, data)
        else:
            _write_fd(fd, data, shown)
    except OSError as e:
        raise UserError(f"cannot write {shown}: {reason(e)}") from e
    finally:
        os.close(fd)


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def check_output(dst: str | Path, *, inputs: Iterable[str | Path] = (), force: bool = False,
                 derived: bool = False) -> str:
    """How :func:`write_output` would write ``dst``: 'stdout', 'fd' (/dev/stdout, /dev/fd/N), 'into'
    (an existing character device or FIFO, written into) or 'file' (a regular file, replaced
    atomically); raises the UserError it would raise before writing (same file as an input, a
    folder or another kind of file, an existing file without ``force``).  ``derived``: ``dst`` is
    a default name the user did not type (said so in the message)."""
    if is_stdio(dst):
        return "stdout"
    if _stream_fd(dst) is not None:
        return "fd"
    shown = str(dst)
    path = Path(dst)
    for src in inputs:
        if same_file(path, src):
            raise UserError(f"output {shown} is the same file as the input; refusing to overwrite it")
    try:
        mode = os.stat(path).st_mode  # through symlinks
    except OSError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return "into"
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"cannot write {shown}: it is {_kind_of(mode)}; only regular files are replaced")
    if os.path.lexists(path) and not force:
        if derived:
            raise OutputExists(f"{shown} already exists (the default output name); name another output, "
                               f"or add --force to replace it")
        raise OutputExists(f"output {shown} already exists (use --force to replace it)")
    return "file"


def write_output(
    dst: str | Path,
    data: bytes,
    *,
    inputs: Iterable[str | Path] = (),
    force: bool = False,
) -> None:
    """Write ``data`` to ``dst``: ``'-'``, /dev/stdout and /dev/fd/N are written to their descriptor,
    an existing character device or FIFO is written into, anything else is a regular file written
    atomically (a symlink's target is replaced, the link kept).

    Refuses (UserError) when ``dst`` is the same file as one of ``inputs``, a folder, a block device
    or a socket, and (:class:`OutputExists`) when it exists and ``force`` is False.  Missing parent
    directories are created.
    """
    how = check_output(dst, inputs=inputs, force=force)
    shown = str(dst)
    if how == "stdout":
        _write_stdout(data)
    elif how == "fd":
        _write_fd(_stream_fd(dst), data, shown)
    elif how == "into":
        _write_into(Path(dst), data, shown)
    else:
        _write_file(Path(dst), data, shown)


def _write_file(path: Path, data: bytes, shown: str) -> None:
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # through a symlink, keeping it
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise UserError(f"cannot write {shown}: {parent} exists and is not a directory") from e
    except OSError as e:
        raise UserError(f"cannot write {shown}: cannot create directory {parent}: {reason(e)}") from e
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        old_mode = None
    try:
        replace_atomically(target, lambda f: f.write(data), old_mode if old_mode is not None else 0o666 & ~_umask())
    except OSError as e:
        raise UserError(f"cannot write {shown}: {reason(e)}") from e

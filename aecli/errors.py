"""Errors the user can cause: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import sys


class UserError(Exception):
    """An error caused by the user's input or environment; str(e) is one clear line."""


class OutputExists(UserError):
    """The output exists and may not be overwritten (no --force)."""


def reason(exc: BaseException) -> str:
    """The cause of an error in a few words: an OSError's strerror ("No space left on device"), else
    the first line of its message, else its type's name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def environment_error(exc: BaseException) -> str | None:
    """One line for an error of the environment that got past the library's own checks, or None.

    The library turns the errors it expects into UserError with a precise message; this is the
    last resort of the command line, so that an unwritable path, a full disk or an unreadable
    image met deep inside a command still ends in one line and not a traceback.  It covers
    OSError (which includes Pillow's UnidentifiedImageError and "image file is truncated") and
    Pillow's DecompressionBombError.  Anything else is a bug and should keep its traceback.
    """
    if isinstance(exc, OSError):
        why = reason(exc)
        return f"{exc.filename}: {why}" if exc.filename is not None else why
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(exc, pil.DecompressionBombError):
        text = str(exc).strip().splitlines()
        return f"image too large: {text[0] if text else 'decompression bomb'}"
    return None

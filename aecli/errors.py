"""Errors the user can cause: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """An error caused by the user's input or environment; str(e) is one clear line."""


class OutputExists(UserError):
    """The output exists and may not be overwritten (no --force)."""

"""Rich progress bars and spinners on stderr, shown only when stderr is a terminal; --verbose notes."""

from __future__ import annotations

import sys
from contextlib import contextmanager

_verbose = False


def set_verbose(on: bool) -> None:
    """--verbose: `note` prints its lines from now on."""
    global _verbose
    _verbose = bool(on)


def note(msg: str) -> None:
    """A line for --verbose (stderr), nothing otherwise."""
    if _verbose:
        print(f"aecli: {msg}", file=sys.stderr, flush=True)


@contextmanager
def spinner(text: str, enabled: bool | None = None):
    """A spinner with `text` and the time elapsed while the block runs (a search whose length is not
    known), on a terminal only; it disappears when the block ends."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        bar.add_task(text, total=None)
        yield


class _Silent:
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass


@contextmanager
def progress_bar(enabled: bool | None = None):
    """A rich Progress with a `stats` text field, or a no-op twin when not on a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.text import Text

    class Remaining(TimeRemainingColumn):
        """rich's time remaining, or the task's own estimate when it gives one (field `eta`, seconds):
        a run stopped by a time limit knows better than its speed times the steps left."""

        def render(self, task):
            eta = task.fields.get("eta")
            if eta is None:
                return super().render(task)
            m, s = divmod(int(eta), 60)
            return Text(f"{m // 60}:{m % 60:02d}:{s:02d}", style="progress.remaining")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        Remaining(),
        TextColumn("{task.fields[stats]}"),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        yield bar

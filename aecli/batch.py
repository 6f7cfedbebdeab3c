"""Run one command over a file, a pipe, or a folder of files.

A folder input maps every matching file below it to the same relative path under the
output folder (subfolders mirrored, suffix replaced), skips outputs that exist unless
`force`, reports a bad file on one line and goes on, and ends with a summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import OutputExists, UserError
from .progress import progress_bar


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"done {self.done}, skipped {self.skipped}, failed {self.failed}"


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def plan(src: Path, dst: Path, exts: Iterable[str], suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs for a folder; refuses outputs inside the input tree's files."""
    from .imageio import mirror_path, walk_images

    if dst.exists() and not dst.is_dir():
        raise UserError(f"output {dst} must be a folder when the input {src} is a folder")
    pairs = [(f, mirror_path(f, src, dst, suffix)) for f in walk_images(src, tuple(exts))]
    if not pairs:
        raise UserError(f"no input files found under {src}")
    return pairs


def run(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], str | None], *, force: bool, quiet: bool, label: str) -> Summary:
    """Apply work(input, output) to each pair; work returns a message for the log or None."""
    summary = Summary()
    seen: dict[Path, Path] = {}
    with progress_bar(None if not quiet else False) as bar:
        job = bar.add_task(label, total=len(pairs), stats="")
        for src, dst in pairs:
            try:
                if dst in seen:
                    raise UserError(f"{src} and {seen[dst]} would both be written to {dst}")
                seen[dst] = src
                if dst.exists() and not force:
                    summary.skipped += 1
                    continue
                msg = work(src, dst)
                summary.done += 1
                if msg and not sys.stderr.isatty():
                    say(msg, quiet)
            except OutputExists:
                summary.skipped += 1
            except UserError as exc:
                summary.failed += 1
                msg = str(exc) if str(src) in str(exc) else f"{src}: {exc}"
                summary.errors.append(msg)
                say(f"aecli: error: {msg}")
            finally:
                bar.advance(job)
    say(f"{label}: {summary.line()}", quiet)
    return summary

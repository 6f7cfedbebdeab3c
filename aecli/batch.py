"""Run one command over a file, a pipe, or a folder of files.

A folder input maps every matching file below it to the same relative path under the
output folder (subfolders mirrored, suffix replaced), skips outputs that exist unless
`force` (but redoes an existing output that is damaged: a .lat file that does not parse, an
image that does not open), reports a bad file on one line and goes on, and ends with a summary.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import OutputExists, UserError
from .images.walk import walk_images
from .paths import inside, same_file
from .progress import progress_bar


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    redone: int = 0  # existing outputs found damaged, so done again instead of skipped

    def line(self) -> str:
        text = f"done {self.done}, skipped {self.skipped}, failed {self.failed}"
        if self.redone:
            text += f"; {self.redone} existing output{'s' if self.redone > 1 else ''} damaged, redone"
        return text


def lat_problem(path: Path) -> str | None:
    """Why an existing .lat output cannot be kept (it does not parse: header and CRC), or None.
    Cheap: no torch, nothing decoded."""
    from . import format as latformat

    try:
        latformat.unpack(Path(path).read_bytes())
    except (OSError, latformat.FormatError) as exc:
        return str(exc)
    return None


def image_problem(path: Path) -> str | None:
    """Why an existing image output cannot be kept (it does not open and decode), or None."""
    from .images.decode import read_image

    try:
        read_image(Path(path))
    except UserError as exc:
        return str(exc)
    return None


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def plan(src: Path, dst: Path, exts: Iterable[str], suffix: str | Callable[[Path], str], *,
         guard_inputs: bool = False) -> list[tuple[Path, Path]]:
    """(input, output) pairs for a folder: every file below `src` with one of `exts` (images.walk),
    and its mirror below `dst` with the suffix replaced by `suffix` (or by `suffix(file)`).

    `guard_inputs`, for outputs of the inputs' kind (images in, images out): the output folder may
    not be the input folder, and files already below it are not inputs (an output folder inside
    the input folder, on a rerun)."""
    if dst.exists() and not dst.is_dir():
        raise UserError(f"output {dst} must be a folder when the input {src} is a folder")
    if guard_inputs and dst.exists() and same_file(dst, src):
        raise UserError(f"output folder {dst} is the input folder; refusing to overwrite the inputs")
    out_root = dst.resolve() if guard_inputs else None
    files = [f for f in walk_images(src, exts) if out_root is None or not inside(f.resolve(), out_root)]
    suffix_of = suffix if callable(suffix) else (lambda f: suffix)
    pairs = [(f, mirror_path(f, src, dst, suffix_of(f))) for f in files]
    if not pairs:
        raise UserError(f"no input files found under {src}")
    return pairs


def mirror_path(src_file: Path, src_root: Path, dst_root: Path, new_suffix: str) -> Path:
    """``dst_root / (src_file relative to src_root)`` with its suffix replaced
    by ``new_suffix`` (``'.lat'`` or ``'lat'``; ``''`` removes it)."""
    src_file, src_root, dst_root = Path(src_file), Path(src_root), Path(dst_root)
    try:
        rel = src_file.relative_to(src_root)
    except ValueError:
        rel = src_file.resolve().relative_to(src_root.resolve())
    if new_suffix and not new_suffix.startswith("."):
        new_suffix = "." + new_suffix
    if not rel.name:
        raise ValueError(f"{src_file} is the root {src_root} itself")
    return dst_root / rel.with_suffix(new_suffix)


def run(pairs: list[tuple[Path, Path]], work: Callable[[Path, Path], str | None], *, force: bool, quiet: bool, label: str,
        workers: int = 1, problem: Callable[[Path], str | None] | None = None,
        prepare: Callable[[], None] | None = None) -> Summary:
    """Apply work(input, output) to each pair; work returns a message for the log or None.

    Outputs that exist are skipped unless `force`, or unless `problem(output)` says why the existing
    file cannot be kept (lat_problem, image_problem): then it is done again, with a warning, and
    the summary counts it.  With `workers` > 1 that many files are in
    flight at once on threads sharing the one loaded model (the model's arithmetic and the image
    codecs release the GIL), each with its share of torch's CPU threads. Messages, errors and
    the summary come in input order whatever the number of workers.

    `prepare()` (loading the model, and with it torch) is called once the skips are decided, and
    only if some file is left to do: a rerun over a finished folder loads nothing.
    """
    summary = Summary()
    seen: dict[Path, Path] = {}
    todo: list[tuple[Path, Path]] = []
    early: list[str] = []
    for src, dst in pairs:
        if dst in seen:
            summary.failed += 1
            early.append(f"{src} and {seen[dst]} would both be written to {dst}")
            continue
        seen[dst] = src
        if dst.exists() and not force:
            why = problem(dst) if problem is not None else None
            if why is None:
                summary.skipped += 1
                continue
            summary.redone += 1
            say(f"aecli: warning: {dst} exists but is damaged ({why}): doing it again")
        todo.append((src, dst))
    for msg in early:
        summary.errors.append(msg)
        say(f"aecli: error: {msg}")
    if todo and prepare is not None:
        prepare()

    def one(pair: tuple[Path, Path]) -> tuple[str, str | None]:
        src, dst = pair
        try:
            return "done", work(src, dst)
        except OutputExists:  # appeared since the plan was made
            return "skipped", None
        except UserError as exc:
            return "failed", str(exc) if str(src) in str(exc) else f"{src}: {exc}"

    workers = max(1, min(workers, len(todo)))
    with progress_bar(None if not quiet else False) as bar:
        job = bar.add_task(label, total=len(pairs), completed=len(pairs) - len(todo), stats="")
        with _thread_share(workers):
            if workers == 1:
                results = map(one, todo)
                pool = None
            else:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(workers, thread_name_prefix="aecli")
                results = pool.map(one, todo)
            try:
                for outcome, msg in results:
                    if outcome == "done":
                        summary.done += 1
                        if msg and not sys.stderr.isatty():
                            say(msg, quiet)
                    elif outcome == "skipped":
                        summary.skipped += 1
                    else:
                        summary.failed += 1
                        summary.errors.append(msg)
                        say(f"aecli: error: {msg}")
                    bar.advance(job)
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
    say(f"{label}: {summary.line()}", quiet)
    return summary


@contextmanager
def _thread_share(workers: int):
    """While `workers` files run at once, give each 1/workers of torch's CPU threads."""
    torch = sys.modules.get("torch") if workers > 1 else None
    if torch is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, saved // workers))
    try:
        yield
    finally:
        torch.set_num_threads(saved)

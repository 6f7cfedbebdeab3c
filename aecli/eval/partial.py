"""The record of an unfinished `aecli eval` run, so that `--resume` goes on where it stopped.

A sweep at a high `--effort` takes hours on a CPU.  As each image is finished, its points (bpp,
PSNR, MS-SSIM, times at every quality) are appended as one JSON line to ``NAME.partial.jsonl`` in
the output folder and flushed to disk.  The first line says what was measured (model, fingerprint,
effort, qualities); `--resume` reuses the recorded images whose path and content (SHA-256) are
unchanged and measures only the others.  The file is removed when the run's results are written.

A run killed mid-write leaves at most one incomplete last line; it is ignored (that image is
measured again).  Any other damage, or a record of a different model or effort, is a one-line
error.  No torch here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_output
from ..errors import UserError

KIND = "aecli-eval-partial"
VERSION = 1


class PartialRun:
    """Finished images of one sweep, kept on disk as they come."""

    def __init__(self, path: Path, header: dict, resume: bool):
        self.path = path
        self.header = {"kind": KIND, "version": VERSION, **header}
        self.done: dict[tuple[str, str], dict] = {}
        if resume and path.exists():
            self.done = self._load()
        else:
            # a fresh record (an earlier unfinished run under this name is replaced)
            write_output(path, (json.dumps(self.header) + "\n").encode(), force=True)

    def _load(self) -> dict[tuple[str, str], dict]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        lines = raw.split(b"\n")
        # the last element is b"" when the file ends in a newline, else an incomplete line: dropped
        complete, tail = lines[:-1], lines[-1]
        try:
            head = json.loads(complete[0]) if complete else None
        except (ValueError, UnicodeDecodeError):
            head = None
        if not isinstance(head, dict) or head.get("kind") != KIND:
            raise UserError(f"{self.path} is not a record of an aecli eval run (delete it or drop --resume)")
        try:
            entries = [json.loads(line) for line in complete[1:]]
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{self.path} is damaged (delete it to start over)") from None
        for key in ("version", "model", "fingerprint", "effort", "qualities"):
            if head.get(key) != self.header.get(key):
                raise UserError(f"{self.path} was recorded with {key} {head.get(key)!r}, this run has "
                                f"{self.header.get(key)!r} (delete it or drop --resume)")
        done = {}
        for e in entries:
            try:
                done[(str(e["image"]), str(e["sha256"]))] = {int(q): dict(v) for q, v in e["points"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                raise UserError(f"{self.path} is damaged (delete it to start over)") from None
        if tail:  # killed while writing a line: keep the complete ones only
            with open(self.path, "r+b") as fh:
                fh.truncate(len(raw) - len(tail))
        return done

    def get(self, image: Path, sha256: str) -> dict | None:
        return self.done.get((str(image), sha256))

    def add(self, image: Path, sha256: str, points: dict) -> None:
        line = json.dumps({"image": str(image), "sha256": sha256, "points": {str(q): v for q, v in points.items()}})
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done[(str(image), sha256)] = points

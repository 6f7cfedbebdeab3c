"""What the two targets of the fuzz harness share: the code under test as the command line calls it,
one guarded call of it (time limit, traced allocations, peak RSS), how outcomes are classified and
counted, and the byte-level helpers of the mutations."""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import time
import traceback
import tracemalloc
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aecli import format as latformat  # (stdlib only, cheap)
from aecli.errors import UserError

KiB, MiB = 1 << 10, 1 << 20


# --------------------------------------------------------------------------- the code under test


def cli_reader(data: bytes) -> latformat.LatFile:
    """The reader as `aecli decompress` / `aecli info` call it."""
    return latformat.unpack(data)


def cli_decode(lat: latformat.LatFile) -> bytes:
    """What `aecli decompress` does after parsing (aecli/codec/files.py, `_decompress_one`)."""
    from aecli.codec.api import codec_for
    from aecli.images.encode import encode_image

    if lat.kind == "fitted":  # _decompress_fitted
        from aecli.codec.fitted import decoder as fitted

        return encode_image(fitted.decompress(lat), "png")
    codec = codec_for(lat, None)
    img = codec.decompress(lat)
    return encode_image(img, "png", metadata=lat.meta())


def reader_expected(exc: BaseException) -> bool:
    # _decompress_one and inspection.lat_info turn FormatError into UserError.
    return isinstance(exc, (latformat.FormatError, UserError))


def decoder_expected(exc: BaseException) -> bool:
    # aecli.cli._guarded and aecli.batch.run catch UserError only; anything else is a traceback.
    return isinstance(exc, UserError)


# --------------------------------------------------------------------------- one guarded call


class Hang(BaseException):
    """Raised by SIGALRM.  A BaseException, so `except Exception` in the library cannot hide it."""


def on_alarm(signum, frame):
    raise Hang()


def _arm(seconds: float | None) -> None:
    """Start the per-call timer (None: stop it)."""
    signal.setitimer(signal.ITIMER_REAL, 0.0 if seconds is None else max(1e-3, seconds))


@dataclass
class Outcome:
    ok: bool  # returned normally
    expected: bool  # returned, or raised an expected exception
    hang: bool
    elapsed: float
    peak: int  # traced allocation peak during the call, above what was allocated before it
    rss_rise_kb: int  # ru_maxrss increase during the call
    value: object = None
    error_type: str = ""
    message: str = ""
    where: str = ""  # innermost frame in aecli (file:line function) of an unexpected exception


def guarded(fn: Callable[[], object], time_limit: float, expected: Callable[[BaseException], bool], use_alarm: bool) -> Outcome:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    value, exc_info = None, None
    try:
        if use_alarm:
            _arm(time_limit)
        try:
            value = fn()
        finally:
            if use_alarm:
                _arm(None)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - classifying every exception is the point
        exc_info = exc
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - before
    rss_rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    if exc_info is None:
        hang = elapsed > time_limit
        return Outcome(True, True, hang, elapsed, peak, rss_rise, value)
    hang = isinstance(exc_info, Hang) or elapsed > time_limit
    where = ""
    if not isinstance(exc_info, Hang):
        frames = traceback.extract_tb(exc_info.__traceback__)
        ours = [fr for fr in frames if "aecli" in fr.filename.replace("\\", "/").split("/")] or frames
        if ours:
            fr = ours[-1]
            where = f"{Path(fr.filename).name}:{fr.lineno} {fr.name}"
    out = Outcome(False, expected(exc_info) and not isinstance(exc_info, Hang), hang, elapsed, peak, rss_rise,
                  None, type(exc_info).__name__, str(exc_info).splitlines()[0][:300] if str(exc_info) else "", where)
    del exc_info  # drop the traceback (and the arrays its frames hold)
    return out


_CLASS_SUBS = [
    (re.compile(r"'[^']*'"), "'…'"),
    (re.compile(r"\([^()]*(?:invalid for the employed|fingerprint)[^()]*\)"), "(…)"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "<hex>"),
    (re.compile(r"mode byte 0x[0-9a-f]{2}"), "mode byte <hex>"),
    (re.compile(r"\b\d+x\d+\b"), "NxN"),
    (re.compile(r"(?<![\d-])\d+(?![\d-])"), "N"),  # numbers, but not the "0-9" in a message
]


def message_class(msg: str) -> str:
    """The message with names, numbers and fingerprints blanked out, to count kinds of rejection."""
    for rx, rep in _CLASS_SUBS:
        msg = rx.sub(rep, msg)
    return msg[:120]


# --------------------------------------------------------------------------- a run


@dataclass
class Findings:
    """What a run found that must not happen (crashes, hangs, allocations over their bounds), and its
    cases counted by mutation."""

    crashes: list = field(default_factory=list)
    crash_signatures: Counter = field(default_factory=Counter)
    hangs: list = field(default_factory=list)
    over_alloc: list = field(default_factory=list)
    rss_over: list = field(default_factory=list)
    by_mutation: dict = field(default_factory=dict)

    def summary(self, keep: int = 50) -> dict:
        return {
            "crashes": len(self.crashes),
            "crash_signatures": dict(self.crash_signatures.most_common()),
            "hangs": len(self.hangs),
            "over_allocation": len(self.over_alloc),
            "rss_over_bound": len(self.rss_over),
            "crash_examples": self.crashes[:keep],
            "hang_examples": self.hangs[:keep],
            "over_allocation_examples": self.over_alloc[:keep],
            "rss_examples": self.rss_over[:keep],
            "by_mutation": dict(sorted(self.by_mutation.items())),
        }


def each_case(progress, label: str, cases: int, start: int, key: str, every: int, status: Callable[[], str]):
    """(i, random.Random(f"{key}{i}")) for each case, under a progress bar that shows status() every
    `every` cases."""
    from aecli.progress import progress_bar

    with progress_bar(progress) as bar:
        job = bar.add_task(label, total=cases, stats="")
        for i in range(start, start + cases):
            yield i, random.Random(f"{key}{i}")
            if (i - start) % every == every - 1 or i == start + cases - 1:
                bar.update(job, completed=i - start + 1, stats=status())


@contextmanager
def instrumented():
    """For one run: SIGALRM for the time limits (when in the main thread) and tracemalloc for the
    allocation bounds; yields whether the alarm is in use."""
    use_alarm = hasattr(signal, "setitimer") and _in_main_thread()
    old_handler = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        yield use_alarm
    finally:
        if use_alarm:
            _arm(None)
            signal.signal(signal.SIGALRM, old_handler)
        if started_tracing:
            tracemalloc.stop()


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def rss_now_kb() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // KiB)
    except (OSError, ValueError, IndexError):
        return 0


def rel_path(p: str) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return p


# --------------------------------------------------------------------------- bytes for the mutations


def rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def flip_bits(rng: random.Random, b: bytes, flips: int) -> bytes:
    if not b:
        return b
    out = bytearray(b)
    for _ in range(flips):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def weighted(rng: random.Random, table: dict) -> str:
    names = list(table)
    return rng.choices(names, weights=[table[n][1] for n in names])[0]

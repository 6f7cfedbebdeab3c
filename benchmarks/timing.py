"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeat: int, warmup: bool = True) -> float:
    """Median wall-clock seconds of `repeat` calls of fn() (after one untimed call if `warmup`)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

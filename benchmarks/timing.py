"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time

# how the speed benchmarks code an image, said the same way in each report
OWN_SIZE = ("(`--scale 1`; by default compress also tries 11/8 from quality 2 on, about 6x the encode time: "
            "docs/codec.md, \"Coding scale\")")


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


def best_of_turns(calls: dict, turns: int, repeat: int) -> dict:
    """For each named call, the best of `turns` medians (each after a warm-up); the calls take
    turns, so that a slow spell of the machine falls on all of them rather than on one."""
    best = {k: float("inf") for k in calls}
    for _ in range(turns):
        for k, fn in calls.items():
            best[k] = min(best[k], median_time(fn, repeat, warmup=True))
    return best

"""--target lat: mutated `.lat` files through the reader and the decoder, with allocation bounds
derived from each file's header (`Bounds`); the summary of a run, and replays of saved files."""

from __future__ import annotations

import functools
import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aecli import format as latformat  # (stdlib only, cheap)

from ..paths import ROOT
from .harness import (KiB, MiB, Findings, cli_decode, cli_reader, decoder_expected, each_case, guarded, instrumented,
                      message_class, on_alarm, reader_expected, rel_path, rss_now_kb)
from .lat_mutations import mutate
from .seeds import Seed

MAX_ALIGN = 64  # largest `align` of any codec architecture (hyperprior)


# --------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class Bounds:
    """Allowed peak of traced allocations (bytes) for one case.

    reader:  reader_per_byte * len(file) + reader_const.  The reader copies the payloads
             once (<= len(file)) and builds a few small objects; nothing may depend on the
             sizes the header claims.  Measured: about 1x the file + 2 KiB.
    decoder: per_pixel * Wp * Hp + per_symbol * S + per_byte * len(file) + const, where
             Wp, Hp are the claimed width/height at the file's coding scale, rounded up to
             MAX_ALIGN (the codec pads to its alignment), and S = m*(Wp/16)*(Hp/16) + n*(Wp/64)*(Hp/64) is the number of
             latent symbols the named model codes (m, n its channels).  Per symbol the
             decoder keeps a handful of int64 arrays (table index, coding order, sorted
             symbols, symbols, escapes: <= 8 x 8 bytes); per pixel the output image and its
             copies (RGB uint8, the float32 grey conversion of an L image: <= 3*4 + 4 + 4 + 1
             bytes, alpha 1 byte, PNG output < 5 bytes).  The constants are about 2-3x the
             largest values measured over the seed corpus (see docs/fuzz.md).
    rss:     peak RSS (which also sees torch tensors) may not rise above the baseline by more
             than rss_factor * (decoder bound) + rss_slack.
    """

    reader_per_byte: float = 2.0
    reader_const: int = 64 * KiB
    per_pixel: float = 48.0
    per_symbol: float = 160.0
    per_byte: float = 8.0
    const: int = 2 * MiB
    rss_factor: float = 4.0
    rss_slack: int = 256 * MiB

    def reader(self, n: int) -> int:
        return int(self.reader_per_byte * n + self.reader_const)

    def decoder(self, lat: latformat.LatFile, n: int, channels: tuple[int, int]) -> int:
        wp, hp = padded_size(lat)
        m, hyper_n = channels
        symbols = m * (wp // 16) * (hp // 16) + hyper_n * (wp // 64) * (hp // 64)
        return int(self.per_pixel * wp * hp + self.per_symbol * symbols + self.per_byte * n + self.const)


_CHANNELS: dict = {}


def _model_channels(name: str) -> tuple[int, int] | None:
    """(m, n) of the codec model a file names (n = 0 without a hyperprior), or None if not installed."""
    from aecli import registry

    key = (name, os.environ.get("AECLI_MODEL_PATH", ""), os.environ.get("AECLI_HOME", ""))
    if key not in _CHANNELS:
        _CHANNELS[key] = None
        for mf in registry.all_models():
            if mf.name == name and mf.meta.get("task") == "codec":
                arch = mf.meta.get("architecture", {})
                try:
                    m = int(arch.get("m", 0))
                    n = int(arch.get("n", 0)) if arch.get("kind") == "hyperprior" else 0
                except (TypeError, ValueError):
                    break
                _CHANNELS[key] = (m, n)
                break
    return _CHANNELS[key]


def padded_size(lat: latformat.LatFile) -> tuple[int, int]:
    """The padded size the decoder works at: the coded size (the file's coding scale applied,
    docs/codec.md) rounded up to MAX_ALIGN."""
    d = latformat.describe(lat)
    return -(-d["coded_width"] // MAX_ALIGN) * MAX_ALIGN, -(-d["coded_height"] // MAX_ALIGN) * MAX_ALIGN


def padded_pixels(lat: latformat.LatFile) -> int:
    wp, hp = padded_size(lat)
    return wp * hp


# --------------------------------------------------------------------------- running one case


def run_one(data: bytes, *, decode: bool, reader, decoder, bounds: Bounds, time_limit: float, use_alarm: bool,
            rss_base_kb: int, time_per_mpx: float = 1.0, max_decode_pixels: int | None = None) -> dict:
    """Reader then (optionally) decoder on one input; a dict describing what happened.

    The reader gets `time_limit` seconds; the decoder `time_limit + time_per_mpx * P / 1e6`
    where P is the padded pixel count the header claims (decoding is linear in it, and a
    valid file of a few bytes can claim a 2**28-pixel flat image).  Files whose P exceeds
    `max_decode_pixels` are not decoded (res["skipped"]).
    """
    r = guarded(lambda: reader(data), time_limit, reader_expected, use_alarm)
    res = {"reader": r, "decoder": None, "reader_bound": bounds.reader(len(data)), "skipped": False}
    if not (r.ok and decode and isinstance(r.value, latformat.LatFile)):
        return res
    lat = r.value
    r.value = None
    res["pixels"] = pixels = padded_pixels(lat)
    if max_decode_pixels is not None and pixels > max_decode_pixels:
        res["skipped"] = True
        return res
    channels = _model_channels(lat.model) or (320, 192)
    res["decoder_bound"] = bounds.decoder(lat, len(data), channels)
    res["decoder_limit_s"] = limit = time_limit + time_per_mpx * pixels / 1e6
    res["decoder"] = guarded(lambda: decoder(lat), limit, decoder_expected, use_alarm)
    res["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res["rss_bound_kb"] = rss_base_kb + (bounds.rss_factor * res["decoder_bound"] + bounds.rss_slack) / KiB
    return res


def _over_bound(res: dict) -> bool:
    return res["reader"].peak > res["reader_bound"] or (
        res["decoder"] is not None and res["decoder"].peak > res["decoder_bound"])


def _diagnose(res: dict, again: Callable[[], dict], baseline: tracemalloc.Snapshot, top: int = 5) -> dict:
    """What a flagged case allocated: the sites whose live allocations grew since the run began
    (a cache or a growing table shows up here), then the same case run again at once. A peak
    that does not come back on the repeat was a one-time allocation, not sized by the file."""
    grown = [st for st in tracemalloc.take_snapshot().compare_to(baseline, "lineno") if st.size_diff > 0][:top]
    rep = again()
    out = {"grown_since_start": [f"{rel_path(str(st.traceback[0].filename))}:{st.traceback[0].lineno} "
                                 f"+{st.size_diff} B in +{st.count_diff} blocks" for st in grown],
           "repeat_reader_peak": rep["reader"].peak}
    if rep["decoder"] is not None:
        out["repeat_decoder_peak"] = rep["decoder"].peak
    out["repeats"] = _over_bound(rep)
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class Stats(Findings):
    cases: int = 0
    crc_recomputed: int = 0
    parsed: int = 0
    rejected_reader: Counter = field(default_factory=Counter)
    decode_attempted: int = 0
    decode_skipped_large: int = 0
    decoded: int = 0
    rejected_decoder: Counter = field(default_factory=Counter)
    reader_peak_max: int = 0
    reader_ratio_max: float = 0.0
    decoder_peak_max: int = 0
    decoder_ratio_max: float = 0.0
    decoder_ratio_case: dict = field(default_factory=dict)
    reader_time_max: float = 0.0
    decoder_time_max: float = 0.0
    decoder_time_sum: float = 0.0
    slowest: list = field(default_factory=list)


def _record(stats: Stats, kind: str, entry: dict, data: bytes, crash_dir: Path | None, keep: int = 50) -> None:
    digest = hashlib.sha1(data).hexdigest()[:16]
    entry = dict(entry, sha1=digest, bytes=len(data))
    if crash_dir is not None:
        d = Path(crash_dir)
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{kind}-{digest}.lat"
        p.write_bytes(data)
        entry["file"] = str(p)
    bucket = {"crash": stats.crashes, "hang": stats.hangs, "alloc": stats.over_alloc, "rss": stats.rss_over}[kind]
    if len(bucket) < keep:
        entry["hex"] = data.hex()
    bucket.append(entry)


def fuzz(seeds: list[Seed], cases: int, seed: int = 0, *, decode_fraction: float = 1.0, time_limit: float = 5.0,
         crash_dir: Path | None = None, reader=cli_reader, decoder=cli_decode, bounds: Bounds = Bounds(),
         progress: bool | None = False, start: int = 0, time_per_mpx: float = 1.0,
         max_decode_pixels: int | None = 1 << 26) -> dict:
    """Run `cases` mutated files (case i uses random.Random(f"{seed}:{i}")); return the summary."""
    with instrumented() as use_alarm:
        stats = Stats()
        baseline = tracemalloc.take_snapshot()  # what lives before the first case; flagged cases are compared with it
        rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_now0 = rss_now_kb()
        t_start = time.perf_counter()
        status = lambda: (f"parsed {stats.parsed}  decoded {stats.decoded}/{stats.decode_attempted}  "  # noqa: E731
                          f"crashes {len(stats.crashes)}  hangs {len(stats.hangs)}  over-alloc {len(stats.over_alloc)}")
        for i, rng in each_case(progress, "fuzz .lat", cases, start, f"{seed}:", 200, status):
            data, tag, fixed, si = mutate(rng, seeds)
            decode = rng.random() < decode_fraction
            again = functools.partial(run_one, data, decode=decode, reader=reader, decoder=decoder, bounds=bounds,
                                      time_limit=time_limit, use_alarm=use_alarm, rss_base_kb=rss_base,
                                      time_per_mpx=time_per_mpx, max_decode_pixels=max_decode_pixels)
            res = again()
            if _over_bound(res):
                res["diagnosis"] = _diagnose(res, again, baseline)
            _account(stats, i, tag, fixed, si, seeds, data, res, crash_dir)
    wall = time.perf_counter() - t_start
    summary = _summary(stats, seeds, cases, seed, decode_fraction, time_limit, bounds, wall, rss_base, rss_now0)
    summary["time_per_mpx_s"] = time_per_mpx
    summary["max_decode_pixels"] = max_decode_pixels
    return summary


def _account(stats: Stats, i: int, tag: str, fixed: bool, si: int, seeds, data: bytes, res: dict, crash_dir) -> None:
    stats.cases += 1
    stats.crc_recomputed += fixed
    m = stats.by_mutation.setdefault(tag.split("+")[0], {"cases": 0, "parsed": 0, "decoded": 0, "decoder_rejected": 0})
    m["cases"] += 1
    r = res["reader"]
    base = {"case": i, "mutation": tag, "seed_file": seeds[si].name, "crc_recomputed": fixed}
    diag = res.get("diagnosis", {})
    stats.reader_time_max = max(stats.reader_time_max, r.elapsed)
    stats.reader_peak_max = max(stats.reader_peak_max, r.peak)
    stats.reader_ratio_max = max(stats.reader_ratio_max, r.peak / res["reader_bound"])
    if r.hang:
        _record(stats, "hang", dict(base, stage="reader", seconds=round(r.elapsed, 3), error=r.error_type), data, crash_dir)
    if not r.expected and not r.hang:
        sig = f"reader: {r.error_type} at {r.where}"
        stats.crash_signatures[sig] += 1
        _record(stats, "crash", dict(base, stage="reader", error=r.error_type, message=r.message, where=r.where), data, crash_dir)
    if r.peak > res["reader_bound"]:
        _record(stats, "alloc", dict(base, stage="reader", peak=r.peak, bound=res["reader_bound"], **diag), data, crash_dir)
    if not r.ok:
        if r.expected:
            stats.rejected_reader[message_class(r.message)] += 1
        return
    stats.parsed += 1
    m["parsed"] += 1
    stats.decode_skipped_large += res["skipped"]
    d = res["decoder"]
    if d is None:
        return
    stats.decode_attempted += 1
    stats.decoder_time_max = max(stats.decoder_time_max, d.elapsed)
    stats.decoder_time_sum += d.elapsed
    stats.decoder_peak_max = max(stats.decoder_peak_max, d.peak)
    ratio = d.peak / res["decoder_bound"]
    if ratio > stats.decoder_ratio_max:
        stats.decoder_ratio_max = ratio
        stats.decoder_ratio_case = dict(base, peak=d.peak, bound=res["decoder_bound"])
    stats.slowest.append((d.elapsed, i, tag, res["pixels"]))
    if len(stats.slowest) > 40:
        stats.slowest = sorted(stats.slowest, reverse=True)[:10]
    if d.hang:
        _record(stats, "hang", dict(base, stage="decoder", seconds=round(d.elapsed, 3), limit_s=round(res["decoder_limit_s"], 2),
                                    error=d.error_type), data, crash_dir)
    elif not d.expected:
        sig = f"decoder: {d.error_type} at {d.where}"
        stats.crash_signatures[sig] += 1
        _record(stats, "crash", dict(base, stage="decoder", error=d.error_type, message=d.message, where=d.where), data, crash_dir)
    if d.peak > res["decoder_bound"]:
        _record(stats, "alloc", dict(base, stage="decoder", peak=d.peak, bound=res["decoder_bound"], **diag), data, crash_dir)
    if d.rss_rise_kb > 0 and res["rss_kb"] > res["rss_bound_kb"]:  # this call set a new, too high peak
        _record(stats, "rss", dict(base, stage="decoder", rss_kb=res["rss_kb"], bound_kb=int(res["rss_bound_kb"])), data, crash_dir)
    if d.ok:
        stats.decoded += 1
        m["decoded"] += 1
    elif d.expected:
        stats.rejected_decoder[message_class(d.message)] += 1
        m["decoder_rejected"] += 1


def _summary(s: Stats, seeds, cases, seed, decode_fraction, time_limit, bounds, wall, rss_base, rss_now0) -> dict:
    import dataclasses

    rejected = sum(s.rejected_reader.values())
    return {
        "cases": s.cases,
        "seed": seed,
        "decode_fraction": decode_fraction,
        "time_limit_s": time_limit,
        "wall_s": round(wall, 1),
        "cases_per_s": round(s.cases / wall, 1) if wall else None,
        "crc_recomputed": s.crc_recomputed,
        "parsed_ok": s.parsed,
        "rejected": rejected,
        "reader_rejected_by_message": dict(s.rejected_reader.most_common()),
        "decode_attempted": s.decode_attempted,
        "decode_skipped_over_max_pixels": s.decode_skipped_large,
        "decoded_ok": s.decoded,
        "decoder_rejected": sum(s.rejected_decoder.values()),
        "decoder_rejected_by_message": dict(s.rejected_decoder.most_common()),
        **s.summary(),
        # flagged cases whose peak came back when the case was run again at once (see _diagnose)
        "over_allocation_repeated": sum(bool(e.get("repeats", True)) for e in s.over_alloc),
        "memory": {
            "bounds": dataclasses.asdict(bounds),
            "reader_peak_max_bytes": s.reader_peak_max,
            "reader_peak_over_bound_max": round(s.reader_ratio_max, 4),
            "decoder_peak_max_bytes": s.decoder_peak_max,
            "decoder_peak_over_bound_max": round(s.decoder_ratio_max, 4),
            "decoder_peak_over_bound_case": s.decoder_ratio_case,
            "rss_peak_at_start_mb": round(rss_base / KiB, 1),
            "rss_peak_at_end_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KiB, 1),
            "rss_now_at_start_mb": round(rss_now0 / KiB, 1),
            "rss_now_at_end_mb": round(rss_now_kb() / KiB, 1),
        },
        "timing": {
            "reader_max_s": round(s.reader_time_max, 4),
            "decoder_max_s": round(s.decoder_time_max, 4),
            "decoder_mean_s": round(s.decoder_time_sum / s.decode_attempted, 4) if s.decode_attempted else None,
            "slowest_decodes": [{"seconds": round(t, 3), "case": i, "mutation": tag, "padded_pixels": px}
                                for t, i, tag, px in sorted(s.slowest, reverse=True)[:10]],
        },
        "corpus": [{"name": sd.name, "bytes": len(sd.data), "model": sd.lat.model,
                    "fingerprint": sd.lat.fingerprint.hex(), "quality": sd.lat.quality,
                    "width": sd.lat.width, "height": sd.lat.height, "mode": sd.lat.mode,
                    "stream_bytes": [len(x) for x in sd.lat.streams]} for sd in seeds],
    }


# --------------------------------------------------------------------------- replays


def replay_flagged(summary: dict, models: Path, time_limit: float) -> int:
    """Replay each over-allocation's saved input alone, in a fresh process (`--replay`): a peak that
    came from the state the long run had built up (CPython rebuilding a process-wide table, see
    docs/fuzz.md) does not come back; one sized by the file does. Returns how many came back
    (flagged cases beyond the recorded examples, or without a saved input, count as come back)."""
    examples = summary["over_allocation_examples"]
    reproduced = summary["over_allocation"] - len(examples)
    for e in examples:
        if "file" not in e:
            reproduced += 1
            continue
        r = subprocess.run([sys.executable, "-m", "tools.fuzz", "--replay", str(Path(e["file"]).resolve()),
                            "--models", str(Path(models).resolve()), "--time-limit", str(time_limit)],
                           capture_output=True, text=True, cwd=ROOT)
        e["fresh_process_replay"] = "within bound" if r.returncode == 0 else "over bound"
        reproduced += r.returncode != 0
    return reproduced


def replay(files: list[Path], time_limit: float) -> int:
    """Run saved files through the reader and the decoder with the same checks (`--replay`); print
    what happened to each; 1 if any crashed, hung or went over its bound."""
    signal.signal(signal.SIGALRM, on_alarm)
    tracemalloc.start()
    bad = 0
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for p in files:
        data = p.read_bytes()
        res = run_one(data, decode=True, reader=cli_reader, decoder=cli_decode, bounds=Bounds(),
                      time_limit=time_limit, use_alarm=True, rss_base_kb=rss_base)
        for stage in ("reader", "decoder"):
            o = res[stage]
            if o is None:
                continue
            verdict = "ok" if o.ok else ("rejected" if o.expected else "CRASH")
            if o.hang:
                verdict = "HANG"
            bound = res[f"{stage}_bound"]
            if o.peak > bound:
                verdict += " OVER-ALLOCATION"
            bad += verdict not in ("ok", "rejected")
            print(f"{p}: {stage}: {verdict} {o.error_type} {o.message} {o.where} "
                  f"({o.elapsed:.3f} s, peak {o.peak} B of {bound})")
    return 1 if bad else 0

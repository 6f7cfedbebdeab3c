"""The fuzz harness's command line: `python -m tools.fuzz --help`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..paths import RESULTS, ROOT
from . import __doc__ as HARNESS_DOC
from .harness import rel_path
from .lat import fuzz, replay, replay_flagged
from .models import MODEL_STAGES, fuzz_models, replay_models
from .seeds import build_corpus, model_seeds, prepare_models


# --------------------------------------------------------------------------- printed summaries


def _print_crashes(p, s: dict) -> None:
    p(f"crashes          {s['crashes']}")
    for sig, n in s["crash_signatures"].items():
        p(f"  {n:>8}  {sig}")


def _print_summary(s: dict, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"cases            {s['cases']}  (CRC recomputed in {s['crc_recomputed']}), seed {s['seed']}")
    p(f"reader           parsed OK {s['parsed_ok']}, rejected {s['rejected']}")
    for msg, n in list(s["reader_rejected_by_message"].items())[:12]:
        p(f"  {n:>8}  {msg}")
    p(f"decoder          attempted {s['decode_attempted']}, decoded OK {s['decoded_ok']}, rejected {s['decoder_rejected']}"
      f" (not attempted: {s['parsed_ok'] - s['decode_attempted'] - s['decode_skipped_over_max_pixels']} by --decode-fraction,"
      f" {s['decode_skipped_over_max_pixels']} over --max-decode-pixels)")
    for msg, n in list(s["decoder_rejected_by_message"].items())[:12]:
        p(f"  {n:>8}  {msg}")
    _print_crashes(p, s)
    p(f"hangs            {s['hangs']}  (limit {s['time_limit_s']} s + {s['time_per_mpx_s']} s per claimed megapixel)")
    mem = s["memory"]
    p(f"over-allocation  {s['over_allocation']}, of which {s.get('over_allocation_repeated', '?')} came back when run "
      f"again at once and {s.get('over_allocation_reproduced', '?')} when replayed in a fresh process "
      f"(max peak/bound: reader {mem['reader_peak_over_bound_max']}, "
      f"decoder {mem['decoder_peak_over_bound_max']}); RSS over bound {s['rss_over_bound']}, "
      f"peak RSS {mem['rss_peak_at_start_mb']} -> {mem['rss_peak_at_end_mb']} MB")
    t = s["timing"]
    p(f"time             {s['wall_s']} s ({s['cases_per_s']} cases/s); slowest decode {t['decoder_max_s']} s, "
      f"mean {t['decoder_mean_s']} s")


def _print_model_summary(s: dict, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"model cases      {s['cases']}, seed {s['seed']}")
    for stage in MODEL_STAGES:
        p(f"  {stage:<6} {s['outcomes'][stage]}")
        for msg, n in list(s["rejected_by_message"][stage].items())[:6]:
            p(f"    {n:>7}  {msg}")
    _print_crashes(p, s)
    p(f"hangs            {s['hangs']}  (limit {s['time_limit_s']} s a stage)")
    mem = s["memory"]
    p(f"over-allocation  {s['over_allocation']} (max peak/bound {mem['peak_over_bound_max']}); RSS over bound "
      f"{s['rss_over_bound']}, peak RSS {mem['rss_peak_at_start_mb']} -> {mem['rss_peak_at_end_mb']} MB")
    p(f"time             {s['wall_s']} s ({s['cases_per_s']} cases/s); slowest stage {s['timing_max_s']}")


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz", description=HARNESS_DOC.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100000, help="mutated files to run (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed; case i uses Random(f'{seed}:{i}')")
    ap.add_argument("--out", type=Path, default=None, help="summary JSON (default docs/results/fuzz.json; --target model: "
                    "docs/results/fuzz_models.json)")
    ap.add_argument("--decode-fraction", type=float, default=1.0,
                    help="share of the files that parse which also go through the decoder (default 1)")
    ap.add_argument("--time-limit", type=float, default=5.0,
                    help="seconds for the reader, and the decoder's base allowance, before a call counts as a hang")
    ap.add_argument("--time-per-mpx", type=float, default=1.0,
                    help="extra decoder seconds per megapixel the header claims (padded; default 1)")
    ap.add_argument("--max-decode-pixels", type=int, default=1 << 26,
                    help="do not decode files claiming more padded pixels (default 2**26: bounds a case's memory)")
    ap.add_argument("--crash-dir", type=Path, default=ROOT / "runs" / "fuzz" / "crashes")
    ap.add_argument("--models", type=Path, default=ROOT / "runs" / "fuzz" / "models",
                    help="where vector-hp and the generated fuzz-fp model live (kept, so that saved inputs replay)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--start", type=int, default=0, help="index of the first case (to resume or re-run a range)")
    ap.add_argument("--replay", type=Path, nargs="*", help="run these files (--target model: folders of saved model "
                    "cases) through the checks instead of fuzzing")
    ap.add_argument("--target", choices=("lat", "model"), default="lat",
                    help="lat: mutated .lat files (default); model: mutated model files, JSON and weights")
    args = ap.parse_args(argv)
    if args.target == "model":
        return main_models(args, argv)

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="aecli-fuzz-"))
    try:
        os.environ["AECLI_MODEL_PATH"] = str(prepare_models(args.models))
        os.environ["AECLI_HOME"] = str(work / "home")  # no user models
        if args.replay is not None:  # saved inputs alone: no corpus to build (a fresh process is the point)
            return replay(args.replay, args.time_limit)
        seeds = build_corpus()
        summary = fuzz(seeds, args.cases, args.seed, decode_fraction=args.decode_fraction, time_limit=args.time_limit,
                       crash_dir=args.crash_dir, progress=None, start=args.start, time_per_mpx=args.time_per_mpx,
                       max_decode_pixels=args.max_decode_pixels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {**_head(args, argv), **summary}
    summary["over_allocation_reproduced"] = replay_flagged(summary, args.models, args.time_limit)
    _print_summary(summary)
    _write_summary(summary, args.out or RESULTS / "fuzz.json")
    return 1 if (summary["crashes"] or summary["hangs"] or summary["over_allocation_reproduced"]
                 or summary["rss_over_bound"]) else 0


def _head(args, argv) -> dict:
    """What ran where: the command, the date, the versions."""
    import numpy
    import torch

    return {
        "command": "python -m tools.fuzz " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "constriction": _version("constriction"),
        "torch_threads": torch.get_num_threads(),
        "start": args.start,
    }


def _write_summary(summary: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {rel_path(str(out))}")


def main_models(args, argv) -> int:
    """--target model: fuzz the model files (JSON and weights) of the seed models."""
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="aecli-fuzz-"))
    try:
        os.environ["AECLI_MODEL_PATH"] = str(prepare_models(args.models))
        os.environ["AECLI_HOME"] = str(work / "home")  # no user models
        seeds = model_seeds(args.models)
        if args.replay is not None:
            return replay_models(args.replay, seeds, args.time_limit)
        summary = fuzz_models(seeds, args.cases, args.seed, time_limit=args.time_limit, crash_dir=args.crash_dir,
                              progress=None, start=args.start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {**_head(args, argv), **summary}
    _print_model_summary(summary)
    _write_summary(summary, args.out or RESULTS / "fuzz_models.json")
    return 1 if (summary["crashes"] or summary["hangs"] or summary["over_allocation"] or summary["rss_over_bound"]) else 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())

"""Where the CPU time of compress, decompress and denoise goes (py-spy, sampled).

    pip install py-spy
    python -m benchmarks.profile_cpu [--rounds 6] [--top 8]

Runs each operation --rounds times on samples/kodim23.png (768x512, quality 5; denoise on its
481x321 crop, blind) under `py-spy record --format raw`, in a fresh process per operation, and
prints the functions with the largest share of the samples taken inside that operation (self
time, and the inclusive time of aecli's own functions).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .common import ROOT, child_args


def child(argv: list[str]) -> None:
    """The profiled process (run under py-spy): OP ROUNDS; only the samples in `timed_region` count."""
    import numpy as np

    from aecli import format as lf
    from aecli.images.decode import read_image

    op, rounds = argv[0], int(argv[1])
    img = read_image(ROOT / "samples" / "kodim23.png")
    if op == "denoise":
        from aecli.denoise.api import load_denoiser
        from aecli.denoise.noise import add_gaussian

        den = load_denoiser(None)
        noisy = add_gaussian(np.ascontiguousarray(img.pixels[:321, :481]), 25, 1)

        def run():
            den.denoise_array(noisy)
    else:
        from aecli.codec.api import load_codec

        codec = load_codec(None)
        lat = lf.unpack(codec.compress(img, 5, scale=8))  # one coding at the image's own size (docs/codec.md, "Coding scale")
        run = (lambda: codec.compress(img, 5, scale=8)) if op == "compress" else (lambda: codec.decompress(lat))
    run()
    timed_region(run, rounds)


def timed_region(run, rounds: int) -> None:
    """The profiled loop (a module-level function: py-spy names it `timed_region`)."""
    for _ in range(rounds):
        run()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    from aecli.registry import DEFAULTS

    print(f"# Where the CPU time goes (py-spy)\n\nCommand: `python -m benchmarks.profile_cpu --rounds {args.rounds} "
          f"--top {args.top}`; default models: codec `{DEFAULTS['codec']}`, denoiser `{DEFAULTS['denoise']}`. "
          "768x512 `samples/kodim23.png` at quality 5 coded at its own size; denoise: its 481x321 crop, blind.")
    with tempfile.TemporaryDirectory() as tmp:
        for op in ("compress", "decompress", "denoise"):
            raw = Path(tmp) / f"{op}.txt"
            subprocess.run(["py-spy", "record", "--format", "raw", "--rate", "200", "--output", str(raw), "--",
                            sys.executable, "-m", "benchmarks.profile_cpu", "--child", op, str(args.rounds)], check=True,
                           cwd=ROOT, capture_output=True)
            own, incl, total = Counter(), Counter(), 0
            for line in raw.read_text().splitlines():
                stack, n = line.rsplit(" ", 1)
                frames = stack.split(";")
                if not any(f.startswith("timed_region") for f in frames):
                    continue  # start-up, model loading, warm-up
                n = int(n)
                total += n
                own[frames[-1]] += n
                for f in set(frames):
                    incl[f] += n
            print(f"\n## {op}: {total} samples in the timed loop\n")
            print("| share | self time in |\n|---:|---|")
            for f, n in own.most_common(args.top):
                print(f"| {100 * n / total:.1f}% | `{f}` |")
            print("\n| share | inclusive, aecli functions |\n|---:|---|")
            shown = 0
            for f, n in incl.most_common():
                if "aecli/" in f and "timed_region" not in f and shown < args.top:
                    print(f"| {100 * n / total:.1f}% | `{f}` |")
                    shown += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(child(child_args()) if child_args() is not None else main())

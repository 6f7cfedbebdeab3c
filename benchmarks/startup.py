"""Whole-process times of aecli commands, as a user timing them in a shell sees them.

Each command runs as a fresh process (python -m aecli ...), best of --runs, wall-clock and CPU
(user + system) seconds; the commands take turns, so that a busy spell of the machine falls on all
of them.  --tree DIR (repeatable) times the aecli package found in DIR (a checkout or an exported
older commit) beside this one, command by command, so that versions are compared under the same
load.  Prints a Markdown table (and JSON with --json) with the machine's load average, since on a
shared machine the best of several runs is the fairest figure.

    python -m benchmarks.startup --runs 5
    git archive 0534709 aecli weights | tar -x -C /tmp/before
    python -m benchmarks.startup --runs 5 --tree /tmp/before --json docs/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import ROOT, SHARED_DATA

KODAK = Path(os.environ.get("AECLI_DATA", SHARED_DATA))  # ../shared/data beside the checkout


def commands(work: Path, data: Path) -> dict[str, list[str]]:
    """name -> argv (after `python`); inputs prepared in `work`."""
    py = ["-m", "aecli"]
    big = data / "Kodak24" / "kodim01.png"
    noisy = data / "CBSD68" / "101085.png"
    small = work / "small.png"
    return {
        "python -c 'import torch'": ["-c", "import torch"],
        "aecli --help": [*py, "--help"],
        "aecli info x.lat": [*py, "info", str(work / "big.lat")],
        "aecli compress 32x32": [*py, "compress", str(small), str(work / "out-small.lat"), "-f"],
        "aecli compress 768x512": [*py, "compress", str(big), str(work / "out-big.lat"), "-f"],
        "aecli decompress 768x512": [*py, "decompress", str(work / "big.lat"), str(work / "out-big.png"), "-f"],
        "aecli denoise 481x321 (dn, --sigma 25)": [*py, "denoise", str(noisy), str(work / "out-dn.png"), "-f",
                                                   "--sigma", "25"],
        "aecli compress folder, all skipped": [*py, "compress", str(work / "batch"), str(work / "batch-out")],
    }


def prepare(work: Path, data: Path, env: dict) -> None:
    from PIL import Image

    Image.open(data / "Kodak24" / "kodim01.png").convert("RGB").crop((0, 0, 32, 32)).save(work / "small.png")
    run = lambda *a: subprocess.run([sys.executable, "-m", "aecli", *a], env=env, check=True, capture_output=True,
                                    cwd=env["PYTHONPATH"])
    run("compress", str(data / "Kodak24" / "kodim01.png"), str(work / "big.lat"), "-f")
    run("compress", str(work / "small.png"), str(work / "small.lat"), "-f")
    (work / "batch").mkdir(exist_ok=True)
    for i in range(3):
        shutil.copy(work / "small.png", work / "batch" / f"{i}.png")
    run("compress", str(work / "batch"), str(work / "batch-out"))


def _timed(argv: list[str], env: dict, cwd: Path) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the child, exit status, end of stderr) of one process, run in
    `cwd` (`python -m aecli` imports the aecli of the current folder first)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *argv], env=env, capture_output=True, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.returncode, r.stderr.decode(errors="replace")[-300:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=KODAK)
    ap.add_argument("--only", default="", help="comma-separated substrings of the command names to time")
    ap.add_argument("--tree", type=Path, action="append", default=[], help="also time the aecli in this folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    trees = {"this": ROOT, **{str(t): t.resolve() for t in args.tree}}
    envs = {k: dict(os.environ, PYTHONPATH=str(t)) for k, t in trees.items()}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work, args.data, envs["this"])
        cmds = commands(work, args.data)
        if args.only:
            keys = [k.strip() for k in args.only.split(",")]
            cmds = {k: v for k, v in cmds.items() if any(s in k for s in keys)}
        best = {t: {k: [float("inf"), float("inf")] for k in cmds} for t in trees}
        for _ in range(args.runs):
            for name, argv in cmds.items():
                for t, env in envs.items():
                    wall, cpu, rc, err = _timed(argv, env, trees[t])
                    if rc != 0:
                        print(f"{t}: {name} failed ({rc}): {err}", file=sys.stderr)
                        best[t][name] = [float("nan"), float("nan")]
                        continue
                    best[t][name] = [min(best[t][name][0], wall), min(best[t][name][1], cpu)]
            loads.append(os.getloadavg()[0])
    print(f"best of {args.runs} runs, {os.cpu_count()} CPUs, 1-minute load average {min(loads):.1f} to {max(loads):.1f}")
    print("| command | " + " | ".join(f"{t}: wall s | {t}: CPU s" for t in trees) + " |")
    print("|---|" + "---:|---:|" * len(trees))
    for name in cmds:
        print(f"| `{name}` | " + " | ".join(f"{best[t][name][0]:.2f} | {best[t][name][1]:.2f}" for t in trees) + " |")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "cpus": os.cpu_count(), "load_1min": loads,
                                         "trees": {t: str(p) for t, p in trees.items()},
                                         "best_wall_cpu_seconds": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Whole-process times of aecli commands, as a user timing them in a shell sees them.

Each command runs as a fresh process (python -m aecli ...), best of --runs; the commands take turns,
so that a busy spell of the machine falls on all of them.  Writes a Markdown table (and JSON with
--json) with the machine's load average, since on a shared machine the best of several runs is the
fairest figure.

    python benchmarks/startup.py --runs 5 --out docs/startup.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KODAK = Path(os.environ.get("AECLI_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout


def commands(work: Path, data: Path) -> dict[str, list[str]]:
    """name -> argv (after `python`); inputs prepared in `work`."""
    py = ["-m", "aecli"]
    big = data / "Kodak24" / "kodim01.png"
    noisy = data / "CBSD68" / "101085.png"
    small = work / "small.png"
    return {
        "python -c 'import torch'": ["-c", "import torch"],
        "aecli --help": [*py, "--help"],
        "aecli --version": [*py, "--version"],
        "aecli info x.lat": [*py, "info", str(work / "big.lat")],
        "aecli compress 32x32": [*py, "compress", str(small), str(work / "out-small.lat"), "-f"],
        "aecli decompress 32x32": [*py, "decompress", str(work / "small.lat"), str(work / "out-small.png"), "-f"],
        "aecli compress 768x512": [*py, "compress", str(big), str(work / "out-big.lat"), "-f"],
        "aecli compress 768x512 --scale 1": [*py, "compress", str(big), str(work / "out-big1.lat"), "-f", "--scale", "1"],
        "aecli decompress 768x512": [*py, "decompress", str(work / "big.lat"), str(work / "out-big.png"), "-f"],
        "aecli denoise 481x321 (dn, --sigma 25)": [*py, "denoise", str(noisy), str(work / "out-dn.png"), "-f",
                                                   "--sigma", "25"],
        "aecli compress folder, all skipped": [*py, "compress", str(work / "batch"), str(work / "batch-out")],
    }


def prepare(work: Path, data: Path, env: dict) -> None:
    from PIL import Image

    Image.open(data / "Kodak24" / "kodim01.png").convert("RGB").crop((0, 0, 32, 32)).save(work / "small.png")
    run = lambda *a: subprocess.run([sys.executable, "-m", "aecli", *a], env=env, check=True, capture_output=True)
    run("compress", str(data / "Kodak24" / "kodim01.png"), str(work / "big.lat"), "-f")
    run("compress", str(work / "small.png"), str(work / "small.lat"), "-f")
    (work / "batch").mkdir(exist_ok=True)
    for i in range(3):
        shutil.copy(work / "small.png", work / "batch" / f"{i}.png")
    run("compress", str(work / "batch"), str(work / "batch-out"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", type=Path, default=KODAK)
    ap.add_argument("--only", default="", help="comma-separated substrings of the command names to time")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work, args.data, env)
        cmds = commands(work, args.data)
        if args.only:
            keys = [k.strip() for k in args.only.split(",")]
            cmds = {k: v for k, v in cmds.items() if any(s in k for s in keys)}
        best = {k: float("inf") for k in cmds}
        for _ in range(args.runs):
            for name, argv in cmds.items():
                t0 = time.perf_counter()
                r = subprocess.run([sys.executable, *argv], env=env, capture_output=True)
                dt = time.perf_counter() - t0
                if r.returncode != 0:
                    print(f"{name} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-300:]}", file=sys.stderr)
                    best[name] = float("nan")
                    continue
                best[name] = min(best[name], dt)
    load = os.getloadavg()
    print(f"best of {args.runs} runs, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| command | seconds |\n|---|---:|")
    for name, t in best.items():
        print(f"| `{name}` | {t:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "load": load, "seconds": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()

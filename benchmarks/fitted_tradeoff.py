"""What each fitting effort of `aecli compress --model fit` buys on a fixed set of images.

    python -m benchmarks.fitted_tradeoff run --effort 2 --record docs/results/fitted_tradeoff.jsonl IMAGES...
    python -m benchmarks.fitted_tradeoff report --record docs/results/fitted_tradeoff.jsonl --out docs/results/fitted_tradeoff IMAGES...

`run` fits every image at every evaluation quality (aecli/codec/fitted/evaluation.py) and appends one
JSON line per (image, effort, quality): bytes, bpp, PSNR, encode seconds (fit + coding, this process),
decode seconds (in-process), iterations and the file's structure version.  It skips what the record already holds, so a killed
run goes on where it stopped, and several runs (other images, other efforts) may share a record.
`--qualities 4` restricts a run to some qualities (a point per effort at one rate weight).

`report` averages each (effort, quality) over the images, measures Pillow's WebP and AVIF on the
same images (aecli/eval/rd.py, the qualities `aecli eval` uses), and writes a table with the
BD-rate (PSNR) of each effort against both, where an effort has at least 2 qualities measured on
every image (the classic cubic fit, of degree n-1 below 4 points).  Timings
depend on the machine and on what else runs on it: say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from aecli import format as latformat
from aecli.eval import rd
from aecli.eval.codec_eval import BASELINE_QUALITIES
from aecli.metrics import psnr
from aecli.images.decode import read_image

from .common import RESULTS


def _load(record: Path) -> list[dict]:
    if not record.exists():
        return []
    rows = []
    for line in record.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a line cut by a kill: measured again
    return rows


def run(images: list[str], effort: int, qualities: list[int], record: Path) -> None:
    from aecli.codec.fitted import codec

    done = {(r["image"], r["effort"], r["quality"]) for r in _load(record)}
    for path in images:
        img = read_image(path)
        h, w = img.pixels.shape[:2]
        for q in qualities:
            key = (Path(path).name, effort, q)
            if key in done:
                continue
            t0 = time.perf_counter()
            res = codec.compress(img, q, effort)
            t1 = time.perf_counter()
            lat = latformat.unpack(res.data)
            back = codec.decompress(lat)
            t2 = time.perf_counter()
            row = {"image": key[0], "effort": effort, "quality": q, "iterations": res.iterations,
                   "structure_version": lat.streams[0][0],
                   "bytes": len(res.data), "bpp": 8 * len(res.data) / (w * h), "psnr": psnr(img.rgb, back.rgb),
                   "encode_s": t1 - t0, "decode_s": t2 - t1, "machine": platform.machine()}
            with record.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def report(images: list[str], record: Path, out: Path) -> dict:
    names = [Path(p).name for p in images]
    first: dict = {}
    for r in _load(record):  # one row per (image, effort, quality): the first recorded
        if r["image"] in names:
            first.setdefault((r["image"], r["effort"], r["quality"]), r)
    rows = list(first.values())
    pics = [read_image(p).rgb for p in images]
    base = {b: [p.as_dict() for p in rd.baseline_sweep(pics, b, BASELINE_QUALITIES[b])] for b in ("webp", "avif")}
    efforts = sorted({r["effort"] for r in rows})
    table = []
    for e in efforts:
        pts = []
        for q in sorted({r["quality"] for r in rows if r["effort"] == e}):
            sel = [r for r in rows if r["effort"] == e and r["quality"] == q]
            if {r["image"] for r in sel} != set(names):
                continue  # not every image measured yet
            pts.append({k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "psnr", "encode_s", "decode_s", "iterations")}
                       | {"quality": q})
        entry = {"effort": e, "points": pts}
        if len(pts) >= 2:  # the classic cubic; of degree n-1 for fewer than 4 points (rd.bd_rate)
            for b, curve in base.items():
                try:
                    entry[f"bd_rate_vs_{b}"] = rd.bd_rate([p["bpp"] for p in curve], [p["psnr"] for p in curve],
                                                          [p["bpp"] for p in pts], [p["psnr"] for p in pts])
                except ValueError as exc:  # e.g. the PSNR ranges do not overlap
                    entry[f"bd_rate_vs_{b}"] = None
                    entry[f"bd_rate_vs_{b}_note"] = str(exc)
        table.append(entry)
    result = {"images": names, "machine": platform.machine(), "efforts": table, "baselines": base}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| effort | iterations | quality | bpp | PSNR (dB) | encode s | decode s |", "|---|---|---|---|---|---|---|"]
    for t in table:
        for p in t["points"]:
            lines.append(f"| {t['effort']} | {p['iterations']:.0f} | {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | "
                         f"{p['encode_s']:.0f} | {p['decode_s']:.2f} |")
    lines += ["", "| effort | BD-rate vs WebP | BD-rate vs AVIF |", "|---|---|---|"]
    for t in table:
        f = lambda k: f"{t[k]:+.1f}%" if t.get(k) is not None else f"n/a ({t.get(k + '_note', 'one quality')})"  # noqa: E731
        lines.append(f"| {t['effort']} | {f('bd_rate_vs_webp')} | {f('bd_rate_vs_avif')} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("run", "report"))
    ap.add_argument("images", nargs="+")
    ap.add_argument("--effort", type=int, default=2)
    ap.add_argument("--qualities", default=None, help="comma-separated (default: the evaluation qualities)")
    ap.add_argument("--record", type=Path, default=RESULTS / "fitted_tradeoff.jsonl")
    ap.add_argument("--out", type=Path, default=RESULTS / "fitted_tradeoff")
    a = ap.parse_args()
    if a.command == "run":
        from aecli.codec.fitted.evaluation import EVAL_QUALITIES

        qs = [int(q) for q in a.qualities.split(",")] if a.qualities else list(EVAL_QUALITIES)
        run(a.images, a.effort, qs, a.record)
    else:
        report(a.images, a.record, a.out)


if __name__ == "__main__":
    main()

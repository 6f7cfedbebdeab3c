"""The fitted codec's finalising choices (fit.finalise), each measured against its absence from
the same fitted latents and networks.

    python -m benchmarks.fitted_finalise --compare steps --images 100080.jpg,35008.jpg --lambdas 0.001,0.004 --iterations 500
    python -m benchmarks.fitted_finalise --compare rounding --images 100080.jpg,35008.jpg --iterations 2000

`--compare steps`: one parameter step per network against each layer's step chosen after it
(`per_layer`, what fits of fit.LAYER_STEPS_FROM iterations or more do).  `--compare rounding`: the
latents rounded to their nearest integers against the finest planes' integers chosen by their
cost (rounding.improve, fit.ROUNDING_LEVELS planes).  Fits whole CBSD432 training images (never
an evaluation set) and finalises each fit both ways.  Prints and records one JSON line per fit:
bits per pixel (the fit's estimate and what the coder spends), PSNR, the steps, the parameters'
bits, the seconds finalising took, and the change of the cost J = MSE + lambda * bpp.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from aecli.codec.fitted import codec, fit, tables

from .common import cbsd432_crop


def variants(compare: str, rounding_levels: int) -> tuple[tuple[str, dict], tuple[str, dict]]:
    """(name, finalise's options) without the choice compared, then with it."""
    if compare == "steps":
        return ("per_network", {"per_layer": False, "rounding_levels": 0}), ("per_layer", {"per_layer": True, "rounding_levels": 0})
    return ("nearest", {"rounding_levels": 0}), ("by_cost", {"rounding_levels": rounding_levels})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", choices=["steps", "rounding"], default="steps")
    ap.add_argument("--rounding-levels", type=int, default=fit.ROUNDING_LEVELS,
                    help="with --compare rounding: how many of the finest planes the search moves")
    ap.add_argument("--images", default="100080.jpg,35008.jpg", help="CBSD432 file names, comma-separated")
    ap.add_argument("--lambdas", default="0.001,0.004", help="rate weights, comma-separated")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--record", type=Path, default=Path("fitted_finalise.jsonl"))
    a = ap.parse_args()
    real = fit.finalise
    results: dict = {}
    pair = variants(a.compare, a.rounding_levels)

    def both(m, lam, iterations, seconds, per_layer=True, **_):
        for name, options in pair:
            t0 = time.perf_counter()
            results[name] = real(copy.deepcopy(m), lam, iterations, seconds, **{"per_layer": per_layer, **options})
            results[name].seconds = time.perf_counter() - t0  # the finalising alone
        return results[pair[1][0]]

    fit.finalise = both
    try:
        for name in a.images.split(","):
            im = cbsd432_crop(name, 10_000)
            x = torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)
            pixels = im.shape[0] * im.shape[1]
            for lam in (float(v) for v in a.lambdas.split(",")):
                t0 = time.perf_counter()
                fit.fit(x, lam, codec.structure_for("RGB", a.iterations), a.iterations)
                cost = {key: 10 ** (-f.psnr / 10) + lam * f.bpp for key, f in results.items()}
                (off, _), (on, _) = pair
                row = {"compare": a.compare, **({"rounding_levels": a.rounding_levels} if a.compare == "rounding" else {}),
                       "image": name, "size": list(im.shape[:2]), "lambda": lam,
                       "iterations": a.iterations, "j_change_percent": round(100 * (cost[on] / cost[off] - 1), 2),
                       "fit_s": round(time.perf_counter() - t0, 1)}
                for key, f in results.items():
                    row[key] = {"bpp": round(f.bpp, 4), "coded_bpp": round(8 * sum(len(b) for b in codec.coded_streams(f)) / pixels, 4),
                                "psnr": round(f.psnr, 3), "exponents": list(f.structure.exponents),
                                "param_bpp": round(sum(tables.parameter_table(q)[1] for q in f.ints) / pixels, 4),
                                "finalise_s": round(f.seconds, 1)}
                print(json.dumps(row), flush=True)
                with open(a.record, "a") as out:
                    out.write(json.dumps(row) + "\n")
    finally:
        fit.finalise = real


if __name__ == "__main__":
    main()

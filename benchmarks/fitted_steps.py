"""The fitted codec's parameter steps: one per network against one per layer (fit.finalise).

    python -m benchmarks.fitted_steps --images 100080.jpg,35008.jpg --lambdas 0.001,0.004 --iterations 500

Fits whole CBSD432 training images (never an evaluation set) and finalises each fit twice, from
the same fitted latents and networks: with one parameter step per network, and with each layer's
step chosen after it (`per_layer`, what fits of fit.LAYER_STEPS_FROM iterations or more do).
Prints and records one JSON line per fit: bits per pixel, PSNR, the steps, the parameters' bits,
and the change of the cost J = MSE + lambda * bpp.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="100080.jpg,35008.jpg", help="CBSD432 file names, comma-separated")
    ap.add_argument("--lambdas", default="0.001,0.004", help="rate weights, comma-separated")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--record", type=Path, default=Path("fitted_steps.jsonl"))
    a = ap.parse_args()
    real = fit.finalise
    results: dict = {}

    def both(m, lam, iterations, seconds, per_layer=True):
        for pl in (False, True):
            t0 = time.perf_counter()
            results[pl] = real(copy.deepcopy(m), lam, iterations, seconds, per_layer=pl)
            results[pl].seconds = time.perf_counter() - t0  # the finalising alone
        return results[True]

    fit.finalise = both
    try:
        for name in a.images.split(","):
            im = cbsd432_crop(name, 10_000)
            x = torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)
            pixels = im.shape[0] * im.shape[1]
            for lam in (float(v) for v in a.lambdas.split(",")):
                fit.fit(x, lam, codec.structure_for("RGB", a.iterations), a.iterations)
                cost = {pl: 10 ** (-f.psnr / 10) + lam * f.bpp for pl, f in results.items()}
                row = {"image": name, "size": list(im.shape[:2]), "lambda": lam, "iterations": a.iterations,
                       "j_change_percent": round(100 * (cost[True] / cost[False] - 1), 2)}
                for pl, key in ((False, "per_network"), (True, "per_layer")):
                    f = results[pl]
                    row[key] = {"bpp": round(f.bpp, 4), "psnr": round(f.psnr, 3), "exponents": list(f.structure.exponents),
                                "param_bpp": round(sum(tables.parameter_table(q)[1] for q in f.ints) / pixels, 4),
                                "finalise_s": round(f.seconds, 1)}
                print(json.dumps(row), flush=True)
                with open(a.record, "a") as out:
                    out.write(json.dumps(row) + "\n")
    finally:
        fit.finalise = real


if __name__ == "__main__":
    main()

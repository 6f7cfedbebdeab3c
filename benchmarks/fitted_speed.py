"""Seconds per iteration of the fitted codec's fit (aecli/codec/fitted/fit.py), in-process.

    python -m benchmarks.fitted_speed samples/kodim23.png --threads 1,2 --iterations 20

Times `--iterations` iterations of the fit's loop (noisy latents, the loss and its gradients, the
optimiser step) on the image after 3 untimed ones, for each torch thread count: with 2 or more
threads the loss runs as two jobs at once (fit._Model.backward), with 1 in turn.  Prints one
JSON line per thread count.  Timings depend on what else runs on the machine: say so when quoting
them.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from aecli.codec.fitted import codec, fit
from aecli.codec.fitted.header import Structure
from aecli.images.decode import read_image


def per_iteration(x: torch.Tensor, threads: int, iterations: int, lam: float = 0.001) -> float:
    torch.manual_seed(0)
    m = fit._Model(x, Structure(channels=x.shape[0]))
    with torch.no_grad():
        for y in m.latents:
            y.normal_(0, 2)  # latents of a fit under way, not all zeros
    opt = torch.optim.Adam([{"params": m.latents}, {"params": [*m.arm.parameters(), *m.synth.parameters()]}])
    pool = ThreadPoolExecutor(2) if threads >= 2 else None
    torch.set_num_threads(1 if pool else threads)
    try:
        def step() -> None:
            planes = [fit._noisy(y, fit.Recipe(), 0.5) for y in m.latents]
            opt.zero_grad(set_to_none=True)
            m.backward(planes, lam, pool)
            opt.step()

        for _ in range(3):
            step()
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        return (time.perf_counter() - start) / iterations
    finally:
        if pool:
            pool.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    ap.add_argument("--iterations", type=int, default=20)
    a = ap.parse_args()
    x = codec._target(read_image(a.image))
    for t in (int(v) for v in a.threads.split(",")):
        s = per_iteration(x, t, a.iterations)
        print(json.dumps({"image": a.image, "size": list(x.shape[1:]), "threads": t, "seconds_per_iteration": round(s, 4)}),
              flush=True)


if __name__ == "__main__":
    main()

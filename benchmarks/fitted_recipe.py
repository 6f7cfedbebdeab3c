"""How the fitted codec's fitting recipe (aecli/codec/fitted/fit.py, `Recipe`) and sizes change what a
fit of a fixed length buys, measured on crops of CBSD432 training images (never an evaluation set).

    python -m benchmarks.fitted_recipe --name ste10 --ste-fraction 0.1 --images 97010.jpg,95006.jpg --lambdas 0.001
    python -m benchmarks.fitted_recipe --name warm --warm-from 97017.jpg ...
    python -m benchmarks.fitted_recipe --name where --where --curve 50 --size 512 --iterations 800 ...

Each (image, rate weight) is fitted for `--iterations` on one thread, then compared with Pillow's WebP
(method 6, qualities 5..95) on the same crop: the bits WebP needs for the same PSNR (log-bpp
interpolated), and the fit's bits against them ("vs_webp", percent; lower is better).  A `--size`
at least the image's longer side takes the whole image.  The bits include the networks' parameters
("param_bpp"), which weigh about six times less on a 768x512 image than on a 256x256 crop.  "bpp" is
the fit's own estimate (the Laplace model's bits); "coded_bpp" is what the range coder spends on
the same fit (a file's streams without its headers), and "coded_bpp_v2" the same coded as structure
version 2 (means in quarters).  One JSON line per fit is appended to `--record`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from aecli.codec.fitted import codec, context, fit, header, tables
from aecli.codec.fitted.nets import Arm, Synthesis, load_integers
from aecli.eval import rd
from aecli.metrics import psnr

from .common import cbsd432_crop, rate_at

def webp_bpp_at(im: np.ndarray, target_psnr: float) -> float:
    """Bits per pixel WebP needs for `target_psnr` on `im` (nan outside its qualities' range)."""
    curve = []
    for q in range(5, 100, 5):
        data, back = rd.encode_decode(im, "webp", q)
        curve.append((8 * len(data) / im.shape[0] / im.shape[1], psnr(im, back)))
    bpp = rate_at(curve, target_psnr)
    return float("nan") if bpp is None else bpp


def _tensor(im: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)


def coded_bits(f: fit.Fitted, version: int | None = None) -> int:
    """The bits of a fit's range-coded streams (parameters, latents, escapes: what a file holds
    besides its headers), coded as structure `version`: by default the fit's own; a structure 3 fit
    can be coded as 2, its means in quarters instead of sixteenths."""
    s = f.structure if version is None else dataclasses.replace(f.structure, version=version)
    return 8 * sum(len(b) for b in codec.coded_streams(f, s))


def networks_of(f: fit.Fitted) -> tuple[dict, dict]:
    """The (quantised) networks of a finished fit, as state dicts to start another fit from."""
    arm, synth = Arm(f.structure), Synthesis(f.structure)
    load_integers(arm, synth, f.ints, f.structure.exponents)
    return arm.state_dict(), synth.state_dict()


@torch.no_grad()
def bits_by_plane(f: fit.Fitted) -> list[dict]:
    """Where a fit's latent bits go: per plane (finest first), its bits, its share of non-zero
    latents, and the bits per latent in each of the ARM's four passes (context.PHASES)."""
    arm, synth = Arm(f.structure), Synthesis(f.structure)
    load_integers(arm, synth, f.ints, f.structure.exponents)
    planes = [torch.from_numpy(q).float() for q in f.planes]
    bits = fit.pass_bits(arm, planes)
    n = len(context.PHASES)
    return [{"plane": k, "shape": list(y.shape), "bits": round(float(sum(b.sum() for b in bits[k * n:(k + 1) * n])), 1),
             "nonzero": round(float((y != 0).float().mean()), 3),
             "bits_per_latent_by_pass": [round(float(b.mean()), 3) for b in bits[k * n:(k + 1) * n]]}
            for k, y in enumerate(planes)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="label of this variant in the record")
    ap.add_argument("--images", default="97010.jpg,95006.jpg", help="CBSD432 file names, comma-separated")
    ap.add_argument("--lambdas", default="0.001", help="rate weights, comma-separated (quality 4 is 0.001)")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--size", type=int, default=256, help="side of the centre crop")
    ap.add_argument("--lr", type=float, default=fit.Recipe.lr)
    ap.add_argument("--latent-lr", type=float, default=fit.Recipe.latent_lr)
    ap.add_argument("--ste-fraction", type=float, default=fit.Recipe.ste_fraction)
    ap.add_argument("--ste-least", type=int, default=fit.Recipe.ste_least)
    ap.add_argument("--quantiser", default=fit.Recipe.quantiser, choices=["uniform", "softround"])
    ap.add_argument("--temperature", default=",".join(map(str, fit.Recipe.temperature)), help="softround's temperature, first,last")
    ap.add_argument("--noise", default=",".join(map(str, fit.Recipe.noise)), help="softround's Gaussian noise, first,last")
    ap.add_argument("--synth-hidden", type=int, default=header.Structure.synth_hidden)
    ap.add_argument("--refine", type=int, default=header.Structure.refine)
    ap.add_argument("--arm-hidden", type=int, default=header.Structure.arm_hidden)
    ap.add_argument("--arm-depth", type=int, default=header.Structure.arm_depth, help="the ARM's hidden layers")
    ap.add_argument("--version", type=int, default=header.VERSION, choices=header.VERSIONS[1:],
                    help="the structure version to fit (docs/format.md; an earlier one to compare with)")
    ap.add_argument("--warm-from", default=None, help="start the networks from a fit of this CBSD432 image")
    ap.add_argument("--warm-iterations", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0, help="the fit's random seed (its noise and network start)")
    ap.add_argument("--where", action="store_true", help="also record the bits of each plane and pass (bits_by_plane)")
    ap.add_argument("--curve", type=int, default=0, help="also record the fit's rate and PSNR every N iterations")
    ap.add_argument("--record", type=Path, default=Path("fitted_recipe.jsonl"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    pair = lambda v: tuple(float(x) for x in v.split(","))  # noqa: E731
    recipe = fit.Recipe(a.lr, a.latent_lr, a.ste_fraction, a.ste_least, a.quantiser, pair(a.temperature), pair(a.noise))
    s = dataclasses.replace(header.Structure(), synth_hidden=a.synth_hidden, refine=a.refine, arm_hidden=a.arm_hidden,
                            arm_depth=a.arm_depth, version=a.version)
    for name in a.images.split(","):
        im = cbsd432_crop(name, a.size)
        for lam in (float(v) for v in a.lambdas.split(",")):
            networks = None
            if a.warm_from:
                src = fit.fit(_tensor(cbsd432_crop(a.warm_from, a.size)), lam, s, a.warm_iterations, recipe=recipe)
                networks = networks_of(src)
            t0 = time.perf_counter()
            curve: list[list] = []

            def report(p: fit.Progress) -> None:
                if a.curve and not p.finishing and (p.iteration % a.curve == 0 or p.iteration == p.total):
                    curve.append([p.iteration, round(p.bpp, 4), round(p.psnr, 2)])

            f = fit.fit(_tensor(im), lam, s, a.iterations, recipe=recipe, networks=networks, seed=a.seed, report=report)
            seconds = time.perf_counter() - t0
            webp = webp_bpp_at(im, f.psnr)
            pixels = im.shape[0] * im.shape[1]
            row = {"name": a.name, "image": name, "size": list(im.shape[:2]), "lambda": lam, "iterations": a.iterations,
                   "recipe": dataclasses.asdict(recipe), "synth_hidden": a.synth_hidden, "refine": a.refine, "arm_hidden": a.arm_hidden,
                   "arm_depth": a.arm_depth,
                   "version": a.version, "warm_from": a.warm_from, "seed": a.seed, "bpp": round(f.bpp, 4), "psnr": round(f.psnr, 2),
                   "param_bpp": round(sum(tables.parameter_table(q)[1] for q in f.ints) / pixels, 4),
                   "webp_bpp": round(webp, 4), "vs_webp": round(100 * (f.bpp / webp - 1), 1), "fit_s": round(seconds, 1),
                   "coded_bpp": round(coded_bits(f) / pixels, 4)}
            if a.version == 3:
                row["coded_bpp_v2"] = round(coded_bits(f, 2) / pixels, 4)
            if a.curve:
                row["curve"] = curve  # (iteration, bpp of the latents, PSNR), with noise on the latents until the rounded phase
            if a.where:
                row["planes"] = bits_by_plane(f)
            with a.record.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

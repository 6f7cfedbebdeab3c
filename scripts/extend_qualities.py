"""Give a trained variable-rate codec lower quality levels without retraining its transforms.

    python -m scripts.extend_qualities checkpoints/hp/checkpoint.pt --out runs/hp11/hp \
        --data ../shared/data/CBSD432 --steps 300 --batch-size 8   # the bundled model's three lower levels

One network serves every quality through per-quality gain vectors on the latent and the
hyper-latent (aecli/codec/model.py). A level below the lowest one needs only its own four gain
vectors: they start as the log-linear extrapolation of the two lowest levels (coarser
quantisation) and are then trained alone, on random 256x256 crops of the training images (the
checkpoint's held-out images stay out), with the network frozen and the loss lambda*255^2*MSE + bpp
of the new level (lr 1e-2, a tenth of it for the last quarter). The levels that existed are untouched, so their files and bits do not change
except through the renumbering (the new levels come first: quality q becomes q + number added).

The result is a checkpoint that `aecli train --resume` continues with all levels (its recipe
records the lambdas; Adam's moments of the gain vectors restart) and the exported weights
(hp.safetensors + hp.json, validation on the held-out images at every level).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from aecli.codec import model as codec_model
from aecli.codec.train import CodecTask, codec_config, load_codec_run
from aecli.devices import hardware

from . import derived

GAINS = ("gain", "inv_gain", "hgain", "inv_hgain")


def extended(old: codec_model._GainedCodec, new_lambdas: tuple[float, ...]) -> codec_model._GainedCodec:
    """A model with `new_lambdas` (the old levels at the end), the old weights, and the new levels'
    gains extrapolated log-linearly below the lowest two."""
    added = len(new_lambdas) - len(old.lambdas)
    if added <= 0 or tuple(new_lambdas[added:]) != tuple(old.lambdas):
        raise SystemExit("the new lambdas must be the old ones with lower levels in front")
    new = codec_model.build({**old.config(), "lambdas": list(new_lambdas)})
    state = old.state_dict()
    with torch.no_grad():
        for name in GAINS:
            if not hasattr(old, name):
                continue
            o = state[name]
            rows = [o[0] - (k + 1) * (o[1] - o[0]) for k in range(added)][::-1]  # one step down per level
            state[name] = torch.cat([torch.stack(rows), o])
    new.load_state_dict(state)
    return new


def fine_tune(model, data, steps: int, batch: int, lr: float, added: int, seed: int, log=print) -> list[dict]:
    """Train the new levels' gain rows alone."""
    task = CodecTask()
    gains = [getattr(model, n) for n in GAINS if hasattr(model, n)]
    opt, gen = derived.train_only(model, gains, lr, seed)
    history, running = [], {"loss": 0.0, "bpp": 0.0, "psnr": 0.0}
    for step in range(1, steps + 1):
        for group in opt.param_groups:  # a tenth of the rate for the last quarter
            group["lr"] = lr * (0.1 if step > 0.75 * steps else 1.0)
        x = data.batch(batch, gen)
        q = torch.randint(added, (batch,), generator=gen)
        _, bpp, mse = task._rd(model, x, q)
        loss = (model.lambda_of(q) * 255**2 * mse + bpp).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in gains:  # the existing levels keep their gains exactly
            g.grad[added:] = 0
        opt.step()
        running["loss"] += loss.item()
        running["bpp"] += bpp.mean().item()
        running["psnr"] += (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item()
        if step % 50 == 0 or step == steps:
            n = 50 if step % 50 == 0 else step % 50
            row = {"step": step, **{k: round(v / n, 5) for k, v in running.items()}}
            history.append(row)
            log(f"gain step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step"))
            running = dict.fromkeys(running, 0.0)
    derived.unfreeze(model)
    return history


def main() -> int:
    ap = derived.parser(__doc__, steps=300, lr=1e-2)
    ap.add_argument("--lambdas", default=",".join(str(v) for v in codec_model.LAMBDAS))
    ap.add_argument("--patch", type=int, default=256)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    state, cfg, old = load_codec_run(args.checkpoint)
    task = CodecTask()
    new_lambdas = tuple(float(v) for v in args.lambdas.split(","))
    model = extended(old, new_lambdas)
    added = len(new_lambdas) - len(old.lambdas)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = {**(state["config"].get("extra") or {}), "lambdas": list(new_lambdas)}
    cfg = codec_config({**state["config"], "data": args.data, "out": str(out), "extra": extra})
    data = task.dataset(codec_config({**state["config"], "data": args.data, "patch": args.patch}))
    log = derived.logger(out / "extend.log")

    log(f"levels {list(old.lambdas)} -> {list(new_lambdas)}: {added} new, {args.steps} steps of their gains "
        f"(batch {args.batch_size} of {args.patch}x{args.patch}, lr {args.lr}, seed {args.seed})")
    t0 = time.perf_counter()
    history = fine_tune(model, data, args.steps, args.batch_size, args.lr, added, args.seed, log)
    seconds = round(time.perf_counter() - t0, 1)

    extension = {"kind": "levels", "at_step": state["step"], "lambdas_added": list(new_lambdas[:added]), "gain_steps": args.steps,
                 "batch_size": args.batch_size, "patch": args.patch, "lr": args.lr, "seed": args.seed,
                 "hardware": hardware(torch.device("cpu")), "seconds": seconds,
                 "command": "python -m scripts.extend_qualities " + " ".join(sys.argv[1:]), "history": history}
    # the checkpoint: the whole run goes on from here with every level; Adam restarts the gains' moments
    opt_state = state["opt"]
    n_main = len(opt_state["param_groups"][0]["params"])
    opt_state = {"state": {k: v for k, v in opt_state["state"].items() if int(k) < n_main},
                 "param_groups": opt_state["param_groups"]}
    derived.finish(task, model, state, {**state["config"], "extra": extra}, cfg, data, out, extension, opt_state, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Widen a trained codec's analysis and synthesis transforms, keeping what it has learned.

    python -m scripts.widen_codec checkpoints/hp/checkpoint.pt --n 128 --out runs/hpw/hp

The new checkpoint holds `aecli.codec.model.widened(model, n)`: the same function as the old model
(new channels start from a fresh initialisation and every connection from a new channel into an old
one starts at zero), with the transforms `n` channels wide; the hyper-transforms and the latent keep
their widths. `aecli train --resume` continues it like any run (its recipe records the hyper width
as extra["nh"]); Adam's moments restart, since every transform tensor changed shape. The export
(weights + JSON, held-out validation) shows that the widened model codes as the old one did.

Why: the bundled codec (N=64) gains little PSNR at its top qualities (docs/results.md); published
hyperprior models use N=128 to 192. Training a wider model from scratch would throw away the
steps already done.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from aecli.codec import model as codec_model
from aecli.codec.train import CodecTask, codec_config, load_codec_run
from aecli.devices import hardware
from aecli.train.checkpoint import atomic_save, training_record, validation_entry



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--n", type=int, required=True, help="new width of the analysis/synthesis transforms")
    ap.add_argument("--out", required=True, help="folder of the new run (its name is the model's name)")
    ap.add_argument("--data", default=None, help="training images (default: the checkpoint's)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the new channels' initialisation")
    ap.add_argument("--no-export", action="store_true", help="write the checkpoint only (no validation)")
    args = ap.parse_args()

    state, cfg, old = load_codec_run(args.checkpoint)
    task = CodecTask()
    model = codec_model.widened(old, args.n, seed=args.seed)
    extra = dict(state["config"].get("extra") or {})
    if isinstance(model, codec_model.HyperpriorCodec):
        extra["nh"] = model.nh
    extra.setdefault("lambdas", list(old.lambdas))
    data_path = args.data or cfg.data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = codec_config({**state["config"], "n": args.n, "data": data_path, "out": str(out), "extra": extra})
    opt, aux_opt = task.optimizers(model, cfg)
    if aux_opt is not None and state.get("aux_opt"):
        aux_opt.load_state_dict(state["aux_opt"])  # the hyper-latent's density is unchanged
    extension = {"kind": "widen", "at_step": state["step"], "n": [old.n, args.n], "seed": args.seed,
                 "command": "python -m scripts.widen_codec " + " ".join(sys.argv[1:]),
                 "hardware": hardware(torch.device("cpu"))}
    new_state = {**state, "config": {**state["config"], "n": args.n, "data": data_path, "extra": extra},
                 "model": model.state_dict(), "opt": opt.state_dict(),
                 "aux_opt": aux_opt.state_dict() if aux_opt is not None else {},
                 "extensions": [*state.get("extensions", []), extension]}
    atomic_save(new_state, out / "checkpoint.pt")
    print(f"widened {old.config()} -> {model.config()} at step {state['step']}: {out / 'checkpoint.pt'}", file=sys.stderr)
    if args.no_export:
        return 0
    data = task.dataset(cfg)
    model.eval()
    val = task.validate(model, data, torch.device("cpu"))
    print(f"validation: {json.dumps(val)}", file=sys.stderr)
    record = training_record(cfg, data, state["step"], state["seconds"], state.get("segments", []),
                             new_state["extensions"], torch.device("cpu"))
    task.export(model, cfg, out, record, [*state["history"], validation_entry(task, state["step"], val)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

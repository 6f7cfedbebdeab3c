"""Give a trained hyperprior codec a checkerboard context model without retraining its transforms.

    python -m scripts.fit_context checkpoints/hp/checkpoint.pt --out runs/hpc/hpc \
        --data ../shared/data/CBSD432 --steps 8000      # the bundled `hpc` model

The new model (aecli/codec/model.py, CheckerboardCodec) is the old one plus a 5x5 context
convolution over the decoded anchor latents and a 1x1 network that corrects the hyperprior's
scales and means; the correction starts at zero, so training starts from the old model's bits.
Everything the old model had stays frozen: the latents, the hyper-latents and the reconstruction
do not change, only the probabilities the latents are coded with, so the loss is their code
length alone (uniform noise in place of rounding).

Each training image (the checkpoint's held-out images stay out) is analysed once at its own size;
a step draws `--batch-size` of them, a random quality each, and a random 16x16 crop of the latents
(even offsets: the checkerboard's phase is kept). Adam at `--lr`, a tenth of it for the last fifth.

The result is a checkpoint that `aecli train --resume` continues jointly (every weight trains
there; Adam's moments restart) and the exported weights (<name>.safetensors + .json, validated
on the held-out images at every level).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from aecli.codec import model as codec_model
from aecli.codec.entropy import gaussian_likelihood
from aecli.progress import progress_bar
from aecli.codec.train import CodecTask, codec_config, load_codec_run
from aecli.devices import hardware

from . import derived

CROP = 16  # latents per crop side (256 pixels)


def with_context(old: codec_model.HyperpriorCodec) -> codec_model.CheckerboardCodec:
    """A checkerboard model holding `old`'s weights (its context part fresh, adding nothing yet)."""
    if type(old) is not codec_model.HyperpriorCodec:
        raise SystemExit(f"needs a hyperprior model, not {old.kind}")
    new = codec_model.build({**old.config(), "kind": "checkerboard", "nh": old.nh})
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("ctx.", "ep.")) for k in missing):
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return new


@torch.no_grad()
def analyse_all(model, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """g_a of every image (padded to the model's alignment), once."""
    out = []
    for img in images:
        x = img.float().div(255).unsqueeze(0)
        h, w = x.shape[2:]
        a = model.align
        x = torch.nn.functional.pad(x, (0, (-w) % a, 0, (-h) % a), mode="replicate")
        out.append(model.g_a(x))
    return out


@torch.no_grad()
def hyper(model, y_base: torch.Tensor, qi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled latents, hyper-synthesis output) of one analysed image at quality index qi."""
    q = torch.tensor([qi])
    y = y_base * model.gain_of(model.gain, q)
    z = torch.round(model.h_a(y) * model.gain_of(model.hgain, q))
    return y, model.h_s(z * model.gain_of(model.inv_hgain, q))


def fit(model, latents: list[torch.Tensor], steps: int, batch: int, lr: float, seed: int, log=print) -> list[dict]:
    opt, gen = derived.train_only(model, list(model.ctx.parameters()) + list(model.ep.parameters()), lr, seed)
    history, running, n = [], 0.0, 0
    side = min([CROP] + [min(t.shape[-2:]) for t in latents])  # CROP, or less for images smaller than its 256 pixels
    side -= side % 2 if side > 1 else 0

    def draw(k: int) -> int:
        return int(torch.randint(k, (1,), generator=gen))

    with progress_bar() as bar:
        job = bar.add_task("context", total=steps, stats="")
        for step in range(1, steps + 1):
            for group in opt.param_groups:
                group["lr"] = lr * (0.1 if step > 0.8 * steps else 1.0)
            ys, params = [], []
            for _ in range(batch):
                y, p = hyper(model, latents[draw(len(latents))], draw(model.qualities))
                h, w = y.shape[-2:]
                r, c = 2 * draw((h - side) // 2 + 1), 2 * draw((w - side) // 2 + 1)
                ys.append(y[..., r:r + side, c:c + side])
                params.append(p[..., r:r + side, c:c + side])
            y, p = torch.cat(ys), torch.cat(params)
            scales, means = model.condition(y, p, codec_model.ste_round)
            lik = gaussian_likelihood(codec_model.rate_proxy(y - means, True), scales)
            bpp = -torch.log2(lik).sum() / (batch * (16 * side) ** 2)
            opt.zero_grad(set_to_none=True)
            bpp.backward()
            opt.step()
            running += float(bpp.detach())
            n += 1
            bar.advance(job)
            if step % 100 == 0 or step == steps:
                history.append({"step": step, "y_bpp": round(running / n, 5)})
                bar.update(job, stats=f"y bpp {running / n:.4f}")
                if step % 1000 == 0 or step == steps:
                    log(f"context step {step}: y bpp (noisy) {running / n:.5f}")
                running, n = 0.0, 0
    derived.unfreeze(model)
    return history


def main() -> int:
    args = derived.parser(__doc__, steps=8000, lr=5e-4).parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    state, cfg, old = load_codec_run(args.checkpoint)
    task = CodecTask()
    model = with_context(old)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = {**state["config"], "data": args.data, "out": str(out), "model": "checkerboard"}
    cfg = codec_config(recipe)
    data = task.dataset(cfg)
    log = derived.logger(out / "context.log")

    t0 = time.perf_counter()
    model.eval()
    latents = analyse_all(model, data.images)
    log(f"analysed {len(latents)} training images in {time.perf_counter() - t0:.0f} s; {args.steps} steps of the "
        f"context model (batch {args.batch_size} of {CROP}x{CROP} latents, lr {args.lr}, seed {args.seed})")
    t0 = time.perf_counter()
    history = fit(model, latents, args.steps, args.batch_size, args.lr, args.seed, log)
    seconds = round(time.perf_counter() - t0, 1)

    extension = {"kind": "context", "at_step": state["step"], "context_steps": args.steps, "batch_size": args.batch_size,
                 "crop_latents": CROP, "lr": args.lr, "seed": args.seed, "hardware": hardware(torch.device("cpu")),
                 "seconds": seconds, "command": "python -m scripts.fit_context " + " ".join(sys.argv[1:]),
                 "history": history}
    opt, aux_opt = task.optimizers(model, cfg)  # fresh: `aecli train --resume` restarts Adam's moments
    derived.finish(task, model, state, recipe, cfg, data, out, extension, opt.state_dict(), log,
                   aux_opt_state=aux_opt.state_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

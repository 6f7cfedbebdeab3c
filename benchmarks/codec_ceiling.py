"""Where the codec loses quality: quantisation, or the transforms themselves?

    python -m benchmarks.codec_ceiling --out docs/results/codec_ceiling   # writes .md and .json

On the bundled model's held-out CBSD432 images (its JSON lists them; never an evaluation set), for
every quality level:

* file bpp and PSNR of the real round trip (`compress` then `decompress`, whole files);
* the PSNR of the synthesis of the *unquantised* latent at that level's gains (y * g * g^-1 with no
  rounding): what the level could reach if its latents cost nothing to code exactly;
* the "transform ceiling": the best of those over the levels, what analysis + synthesis can reproduce
  at all, whatever the rate;
* the model's rate estimate both ways: likelihoods at the rounded latents (what validation reports)
  and at latents plus uniform noise (the training-time stand-in), against the coded streams.

If the real PSNR of the top levels sits just under the unquantised one, more bits cannot help: only
better transforms (a wider or longer-trained network) can.

For scale, a linear block transform: the principal components of 16x16x3 pixel blocks (one latent
position's worth) of --pca-images training images (the held-out ones excluded), keeping the first
K of 768 coefficients, on the same held-out images. It shows how much a latent of M=K values per
block can hold at best linearly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aecli.metrics import psnr
from aecli.train.data import list_images

from .common import RESULTS, SHARED_DATA, machine, progress_bar


def block_pca_psnr(train_files, test_images, ks, block: int = 16) -> dict[int, float]:
    """Mean PSNR of the test images rebuilt from the first k principal components of their
    block x block x 3 blocks (components fitted on train_files), for each k."""
    from PIL import Image as PILImage

    def blocks(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[0] // block * block, a.shape[1] // block * block
        a = a[:h, :w].astype(np.float64)
        return a.reshape(h // block, block, w // block, block, 3).transpose(0, 2, 1, 3, 4).reshape(-1, block * block * 3)

    x = np.concatenate([blocks(np.asarray(PILImage.open(f).convert("RGB"))) for f in train_files])
    mean = x.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((x - mean).T))
    vecs = vecs[:, ::-1]
    out = {}
    for k in ks:
        v = vecs[:, :k]
        scores = []
        for img in test_images:
            b = blocks(img) - mean
            scores.append(psnr(np.clip(np.round(b @ v @ v.T + mean), 0, 255), b + mean))
        out[k] = round(float(np.mean(scores)), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "CBSD432")
    ap.add_argument("--model", default=None, help="codec model (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--pca-images", type=int, default=200, help="training images for the block-transform reference (0: skip)")
    ap.add_argument("--out", type=Path, default=RESULTS / "codec_ceiling", help="output stem (.md and .json)")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from PIL import Image as PILImage

    from aecli import format as latformat
    from aecli.codec.api import load_codec
    from aecli.images.image import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    model = codec.model.eval()
    names = codec.files.meta.get("validation", {}).get("images") or []
    all_files = list_images(args.data)
    files = [p for p in all_files if p.name in set(names)]
    if not files:
        raise SystemExit(f"none of the model's held-out images ({names}) are under {args.data}")
    images = [np.asarray(PILImage.open(f).convert("RGB")) for f in files]

    rows = []
    with progress_bar() as bar, torch.no_grad():
        job = bar.add_task("levels", total=len(codec.qualities), stats="")
        for qi, quality in enumerate(codec.qualities):
            acc = {k: [] for k in ("bpp", "psnr", "psnr_unquantised", "bpp_rounded", "bpp_noisy")}
            for px in images:
                h, w = px.shape[:2]
                data = codec.compress(Image(px, None, "RGB", 8), quality, scale=8)  # the image's own size
                back = codec.decompress(latformat.unpack(data)).pixels
                acc["bpp"].append(8 * len(data) / (h * w))
                acc["psnr"].append(psnr(back, px))
                x = torch.from_numpy(px.copy()).permute(2, 0, 1)[None].float() / 255
                a = model.align
                x = F.pad(x, (0, (-w) % a, 0, (-h) % a), mode="replicate")
                q = torch.tensor([qi])
                gain, inv = model._pick(model.gain, q), model._pick(model.inv_gain, q)
                x_un = model.g_s(model.g_a(x) * gain * inv)[..., :h, :w].clamp(0, 1)
                acc["psnr_unquantised"].append(psnr(torch.round(x_un * 255)[0].permute(1, 2, 0).numpy(), px))
                for mode, key in ((False, "bpp_rounded"), (True, "bpp_noisy")):
                    model.train(mode)
                    torch.manual_seed(0)
                    lik = model(x, q)["likelihoods"]
                    acc[key].append(sum(float(torch.log2(v).sum()) for v in lik) / -(h * w))
                model.eval()
            rows.append({"quality": quality, "lambda": model.lambdas[qi],
                         **{k: round(float(np.mean(v)), 4) for k, v in acc.items()}})
            bar.advance(job)
    ceiling = max(r["psnr_unquantised"] for r in rows)
    held = {f.name for f in files}
    train_files = [p for p in all_files if p.name not in held]
    pca = block_pca_psnr(train_files[: args.pca_images], images, (64, 128, 192, 256, 320)) if args.pca_images else {}
    result = {"model": codec.name, "fingerprint": codec.files.meta.get("fingerprint"), "images": [f.name for f in files],
              "data": str(args.data), "machine": machine(),
              "transform_ceiling_psnr": ceiling, "rows": rows,
              "block_pca_psnr": {"train_images": min(args.pca_images, len(train_files)), "psnr_by_components": pca},
              "command": "python -m benchmarks.codec_ceiling " + " ".join(sys.argv[1:])}
    lines = [f"# Where the codec loses quality (model `{codec.name}`, fingerprint {result['fingerprint']})", "",
             f"Command: `{result['command']}`. {len(files)} held-out CBSD432 images ({', '.join(result['images'])}); "
             "means over images.", "",
             "| quality | lambda | file bpp | PSNR (dB) | PSNR, unquantised latent (dB) | lost to quantisation (dB) "
             "| bpp, rounded estimate | bpp, noisy estimate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['quality']} | {r['lambda']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['psnr_unquantised']:.2f} "
                     f"| {r['psnr_unquantised'] - r['psnr']:.2f} | {r['bpp_rounded']:.4f} | {r['bpp_noisy']:.4f} |")
    lines += ["", f"Transform ceiling (best unquantised PSNR over the levels): {ceiling:.2f} dB (latent of M={model.m} "
              f"values per 16x16x3 block).", ""]
    if pca:
        lines += [f"Linear reference: the first K principal components of 16x16x3 blocks (fitted on "
                  f"{result['block_pca_psnr']['train_images']} other CBSD432 images), same held-out images:", "",
                  "| K | " + " | ".join(str(k) for k in pca) + " |", "|---" * (len(pca) + 1) + "|",
                  "| PSNR (dB) | " + " | ".join(f"{v:.2f}" for v in pca.values()) + " |", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

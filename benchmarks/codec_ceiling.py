"""Where the codec loses quality: quantisation, or the transforms themselves?

    python benchmarks/codec_ceiling.py --out docs/codec_ceiling   # writes .md and .json

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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "CBSD432")
    ap.add_argument("--model", default=None, help="codec model (default: the bundled one)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/codec_ceiling"), help="output stem (.md and .json)")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from PIL import Image as PILImage

    from aecli import format as latformat
    from aecli.codec.api import load_codec
    from aecli.imageio import Image
    from aecli.progress import progress_bar

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    model = codec.model.eval()
    names = codec.files.meta.get("validation", {}).get("images") or []
    files = sorted(p for p in args.data.rglob("*") if p.name in set(names))
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
                data = codec.compress(Image(px, None, "RGB", 8), quality)
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
    result = {"model": codec.name, "fingerprint": codec.files.meta.get("fingerprint"), "images": [f.name for f in files],
              "data": str(args.data), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "transform_ceiling_psnr": ceiling, "rows": rows,
              "command": "python benchmarks/codec_ceiling.py " + " ".join(sys.argv[1:])}
    lines = [f"# Where the codec loses quality (model `{codec.name}`, fingerprint {result['fingerprint']})", "",
             f"Command: `{result['command']}`. {len(files)} held-out CBSD432 images ({', '.join(result['images'])}); "
             "means over images.", "",
             "| quality | lambda | file bpp | PSNR (dB) | PSNR, unquantised latent (dB) | lost to quantisation (dB) "
             "| bpp, rounded estimate | bpp, noisy estimate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['quality']} | {r['lambda']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['psnr_unquantised']:.2f} "
                     f"| {r['psnr_unquantised'] - r['psnr']:.2f} | {r['bpp_rounded']:.4f} | {r['bpp_noisy']:.4f} |")
    lines += ["", f"Transform ceiling (best unquantised PSNR over the levels): {ceiling:.2f} dB.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

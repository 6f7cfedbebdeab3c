"""Compress/decompress speed of aecli's codec next to CompressAI's bmshj2018-hyperprior, same machine.

    pip install --no-deps --target /tmp/caisite compressai tqdm pytorch-msssim einops
    PYTHONPATH=/tmp/caisite python -m benchmarks.vs_compressai --out docs/results --name vs_compressai

(CompressAI installed with --target is found through PYTHONPATH, as any such folder.)

Both run in this process with the same torch thread count, in inference mode, on the same
image (default samples/kodim23.png, 768x512). The two codecs take --turns turns; in each, every
call gets a warm-up and the median of --repeat runs, and the best turn is kept. aecli:
`Codec.compress` (analysis, hyper-analysis, integer hyper-synthesis, range coding, .lat container)
and `Codec.decompress`. CompressAI: `model.compress(x)` and `model.decompress(strings, shape)`
of `bmshj2018_hyperprior(quality=Q)` (its own C++ rANS coder; no container). CompressAI's
weights are downloaded from the internet; where that is not
possible the model runs with its initial weights after `update()`, which gives the same
network arithmetic but other symbol statistics, and the report says so. CompressAI imports
torchvision and point-cloud libraries that its image models never use; where they are missing,
stand-ins are installed for them (see `_stub_optional_imports`).

Writes OUT/NAME.json and OUT/NAME.md.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path

from .common import OWN_SIZE, RESULTS, ROOT, best_of_turns, machine, progress_bar, write_report

OPTIONAL = ("torchvision", "torch_geometric", "pandas", "pointops", "open3d", "plyfile")


def _stub_optional_imports() -> list[str]:
    """Stand-in modules for CompressAI's optional imports that are not installed."""
    missing = []
    for name in OPTIONAL:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return []

    class Placeholder:
        def __init__(self, *a, **k):
            pass

        def __init_subclass__(cls, **k):
            pass

        def __call__(self, *a, **k):  # used as a decorator: give back what it decorates
            return a[0] if a else self

    class Module(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (Placeholder,), {})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in missing:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            m = Module(spec.name)
            m.__path__ = []
            return m

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Finder())
    return missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "samples" / "kodim23.png")
    ap.add_argument("--qualities", default="1,5,8", help="CompressAI's quality numbers; aecli runs the level of the same lambda")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per turn (median taken)")
    ap.add_argument("--turns", type=int, default=3, help="turns the two codecs take; the best turn's median is kept")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="vs_compressai")
    ap.add_argument("--model", default=None, help="aecli codec model (default: the bundled default, `aecli models`)")
    args = ap.parse_args()
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    stubs = _stub_optional_imports()
    from compressai.zoo import bmshj2018_hyperprior

    from aecli import format as latformat
    from aecli.codec.api import load_codec
    from aecli.images.decode import read_image

    img = read_image(args.image)
    h, w = img.pixels.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img.pixels.transpose(2, 0, 1))).float().div(255)[None]
    ours = load_codec(args.model)
    label = f"aecli {ours.name}"
    rows = []
    qualities = [int(q) for q in args.qualities.split(",") if q]
    with progress_bar() as bar, torch.inference_mode():
        job = bar.add_task("vs compressai", total=len(qualities), stats="")
        for q in qualities:
            mine = ours_quality(ours, q)
            # the image's own size (`--scale 1`): the coding whose speed docs/results/vs_compressai.md records;
            # by default compress also tries 11/8 from quality 2 on (about 6x the time, docs/codec.md)
            data = ours.compress(img, mine, scale=8)
            lat = latformat.unpack(data)
            ours.decompress(lat)

            pretrained = True
            try:
                net = bmshj2018_hyperprior(quality=q, pretrained=True)
            except Exception:  # noqa: BLE001 - no network: initial weights
                pretrained = False
                net = bmshj2018_hyperprior(quality=q, pretrained=False)
            net = net.eval()
            net.update(force=True)
            pad_h, pad_w = (-h) % 64, (-w) % 64
            xp = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            out = net.compress(xp)
            net.decompress(out["strings"], out["shape"])

            best = best_of_turns({
                "ours_enc": lambda: ours.compress(img, mine, scale=8),
                "ours_dec": lambda: ours.decompress(lat),
                "cai_enc": lambda: net.compress(xp),
                "cai_dec": lambda: net.decompress(out["strings"], out["shape"]),
            }, args.turns, args.repeat)
            rows.append({"codec": label, "quality": mine, "bpp": 8 * len(data) / (h * w),
                         "encode_s": best["ours_enc"], "decode_s": best["ours_dec"]})
            nbytes = sum(len(s[0]) for s in out["strings"])
            rows.append({"codec": "CompressAI bmshj2018-hyperprior" + ("" if pretrained else " (initial weights)"),
                         "quality": q, "bpp": 8 * nbytes / (h * w), "encode_s": best["cai_enc"], "decode_s": best["cai_dec"],
                         "parameters": sum(p.numel() for p in net.parameters())})
            bar.advance(job)
    params_ours = sum(p.numel() for p in ours.model.parameters())
    L = [f"# Codec speed next to CompressAI ({w}x{h}, {args.image.name})", "",
         f"Command: `PYTHONPATH=DIR python -m benchmarks.vs_compressai{f' --model {args.model}' if args.model else ''}` "
         "(DIR: where CompressAI was installed with pip --target). "
         f"Machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
         f"threads; best of {args.turns} turns (the codecs alternating), each the median of {args.repeat} runs after a warm-up.",
         f"{label}: {params_ours / 1e6:.2f} M parameters. aecli codes at the image's own size {OWN_SIZE}, "
         "at encoder effort 0 (the default).", ""]
    if stubs:
        L += [f"Stand-ins were used for CompressAI's unused optional imports: {', '.join(stubs)}.", ""]
    L += ["| codec | quality | bpp | encode s | decode s | aecli faster: encode | decode |", "|---|---:|---:|---:|---:|---:|---:|"]
    for a, b in zip(rows[::2], rows[1::2]):
        L.append(f"| {a['codec']} | {a['quality']} | {a['bpp']:.3f} | {a['encode_s']:.3f} | {a['decode_s']:.3f} | "
                 f"{b['encode_s'] / a['encode_s']:.2f}x | {b['decode_s'] / a['decode_s']:.2f}x |")
        L.append(f"| {b['codec']} ({b['parameters'] / 1e6:.2f} M parameters) | {b['quality']} | {b['bpp']:.3f} | "
                 f"{b['encode_s']:.3f} | {b['decode_s']:.3f} | | |")
    if any("initial weights" in r["codec"] for r in rows):
        L += ["", "CompressAI's weights could not be downloaded here, so its bpp column is not meaningful "
              "(initial weights); its times are those of its network and coder on this image."]
    write_report(args.out, args.name, {"machine": machine(), "threads": torch.get_num_threads(), "rows": rows}, L)
    return 0




def ours_quality(codec, compressai_quality: int) -> int:
    """aecli's level trained with the lambda of CompressAI's quality number (aecli has lower levels in front)."""
    from aecli.codec.model import COMPRESSAI_LAMBDAS

    lam = COMPRESSAI_LAMBDAS[compressai_quality - 1]
    lambdas = list(codec.model.lambdas)
    return codec.qualities[min(range(len(lambdas)), key=lambda i: abs(lambdas[i] - lam))]

if __name__ == "__main__":
    raise SystemExit(main())

"""Cross-device decoding: a .lat written on one device decodes on another to the same image.

Two halves, run on two machines:

    # on the machine with the GPU: encode there, decode there (GPU and that machine's CPU)
    python -m benchmarks.cross_device write --device cuda --out runs/xdev
    # bring runs/xdev here, then decode the GPU's files on this CPU and compare
    python -m benchmarks.cross_device check runs/xdev --record docs/results/cross_device

`write` makes the test images (the samples/ photos, a 1536x1024 mosaic that is tiled, and small
odd-sized L, RGBA and 1x1 images), compresses each at several qualities on --device, and
records for every file: its bytes, the SHA-256 of the decoded latent (symbols plus means, the
output of the integer path), the pixels decoded on --device (kept as PNG) and the pixels
decoded on that machine's CPU (compared there). It also times compress and decompress of a
768x512 image on --device and on the CPU.

`check` decodes every file here on the CPU and compares: the latent (must be bit-identical),
the pixels against the GPU's and against the other machine's CPU, and the bytes of a fresh
CPU encode of the same image (may differ: the analysis transform is float).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from aecli import format as latformat
from aecli.images.decode import read_image
from aecli.images.encode import encode_image
from aecli.images.image import Image

from .common import ROOT

QUALITIES = (1, 5, 8)


def make_images(out: Path) -> list[Path]:
    """The test images, written once under out/src (check reads the same files back)."""
    from PIL import Image as PILImage

    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    paths = []
    photos = sorted((ROOT / "samples").glob("*.png"))
    for p in photos:
        dst = src / p.name
        dst.write_bytes(p.read_bytes())
        paths.append(dst)
    arrays = [np.asarray(PILImage.open(p).convert("RGB")) for p in photos[:3]]
    a = [x[:512, :768] for x in arrays]
    top = np.concatenate([a[0], a[1]], axis=1)
    bottom = np.concatenate([a[2], a[0][:, ::-1]], axis=1)
    mosaic = np.concatenate([top, bottom], axis=0)  # 1536x1024: larger than one tile, so tiled
    rng = np.random.default_rng(7)
    extra = {
        "mosaic.png": PILImage.fromarray(mosaic),
        "gray_37x53.png": PILImage.fromarray(a[1][100:153, 200:237].mean(axis=2).astype(np.uint8), "L"),
        "rgba_100x77.png": PILImage.fromarray(np.dstack([a[2][:77, :100], rng.integers(0, 256, (77, 100), np.uint8)]), "RGBA"),
        "one_pixel.png": PILImage.fromarray(a[0][:1, :1]),
    }
    for name, im in extra.items():
        im.save(src / name)
        paths.append(src / name)
    return paths


def latent_digest(codec, lat) -> str:
    """SHA-256 of the decoded latent y_hat (symbols + means): the integer path's whole output."""
    import torch

    from aecli.codec import levels

    qi = levels.gain_index(codec.index_of(lat.quality), lat.scale)
    a = codec.model.align
    cw, ch = levels.coded_size(lat.width, lat.height, lat.scale)
    ph, pw = ch + (-ch) % a, cw + (-cw) % a
    streams = list(lat.streams)[: codec.streams_needed("RGB")]
    with torch.inference_mode():
        y_hat = codec.decode_streams(streams, qi, ph // 16, pw // 16)
    return hashlib.sha256(y_hat.contiguous().numpy().tobytes()).hexdigest()


def pixels(img: Image) -> np.ndarray:
    px = img.pixels if img.pixels.ndim == 3 else img.pixels[..., None]
    if img.alpha is not None:
        px = np.concatenate([px, img.alpha[..., None]], axis=2)
    return px


def pixel_digest(img: Image) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels(img)).tobytes()).hexdigest()


def diff(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"identical": bool(not d.any()), "pixels_differing": int(d.any(axis=2).sum()),
            "max_abs": int(d.max()), "values": int(a.size), "pixels": int(a.shape[0] * a.shape[1])}


def timed(fn, repeat: int = 5) -> float:
    fn()  # warm-up (model load, kernel choice)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def write(args) -> int:
    import torch

    from aecli.codec.api import load_codec

    out = Path(args.out)
    (out / "lat").mkdir(parents=True, exist_ok=True)
    (out / "dev").mkdir(parents=True, exist_ok=True)
    dev = load_codec(args.model, args.device)
    cpu = load_codec(args.model, "cpu")
    rows = []
    for path in make_images(out):
        img = read_image(str(path))
        for q in args.qualities:
            stem = f"{path.stem}.q{q}"
            data = dev.compress(img, q)
            (out / "lat" / f"{stem}.lat").write_bytes(data)
            lat = latformat.unpack(data)
            on_dev, on_cpu = dev.decompress(lat), cpu.decompress(lat)
            (out / "dev" / f"{stem}.png").write_bytes(encode_image(on_dev, "png"))
            rows.append({
                "file": f"{stem}.lat", "image": path.name, "quality": q, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "latent_device": latent_digest(dev, lat), "latent_cpu": latent_digest(cpu, lat),
                "device_vs_its_cpu": diff(pixels(on_dev), pixels(on_cpu)),
                "cpu_encode_same_bytes": cpu.compress(img, q) == data,
                # decompress --exact: fixed-point synthesis, meant to be the same everywhere
                "exact_device": pixel_digest(dev.decompress(lat, exact=True)),
                "exact_cpu": pixel_digest(cpu.decompress(lat, exact=True)),
            })
            r = rows[-1]
            print(f"{stem}: {len(data)} bytes, latent same on its CPU: {r['latent_device'] == r['latent_cpu']}, "
                  f"pixels vs its CPU: {r['device_vs_its_cpu']}, CPU encode same bytes: {r['cpu_encode_same_bytes']}",
                  flush=True)
    photo = read_image(str(sorted((ROOT / "samples").glob("*.png"))[0]))
    speed = {}
    for name, c in (("device", dev), ("cpu", cpu)):
        lat = latformat.unpack(c.compress(photo))
        sync = torch.cuda.synchronize if c.device.type == "cuda" else (lambda: None)
        speed[name] = {
            "compress_s": round(timed(lambda: (c.compress(photo), sync())), 4),
            "decompress_s": round(timed(lambda: (c.decompress(lat), sync())), 4),
        }
    manifest = {
        "device": str(dev.device),
        "device_name": torch.cuda.get_device_name(dev.device) if dev.device.type == "cuda" else platform.processor(),
        "cpu": platform.machine(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
        "model": dev.name, "fingerprint": dev.files.fingerprint.hex(),
        "tf32": False,  # the codec runs CUDA convolutions in IEEE float32 (aecli.codec.api.exact_float32)
        "speed_768x512": speed, "files": rows,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(json.dumps(speed))
    return 0


def check(args) -> int:
    import torch

    from aecli.codec.api import load_codec

    src = Path(args.dir)
    manifest = json.loads((src / "manifest.json").read_text())
    cpu = load_codec(args.model, "cpu")
    if cpu.files.fingerprint.hex() != manifest["fingerprint"]:
        print(f"the files were written with model fingerprint {manifest['fingerprint']}, this machine has "
              f"{cpu.files.fingerprint.hex()}", file=sys.stderr)
        return 2
    rows = []
    for r in manifest["files"]:
        data = (src / "lat" / r["file"]).read_bytes()
        lat = latformat.unpack(data)
        here = cpu.decompress(lat)
        gpu_img = read_image(str(src / "dev" / (r["file"][:-4] + ".png")))
        img = read_image(str(src / "src" / r["image"]))
        rows.append({
            **r,
            "latent_here_same": latent_digest(cpu, lat) == r["latent_device"],
            "here_vs_device": diff(pixels(here), pixels(gpu_img)),
            "here_encode_same_bytes": cpu.compress(img, r["quality"]) == data,
            **({"exact_here_same": pixel_digest(cpu.decompress(lat, exact=True)) == r["exact_device"]}
               if "exact_device" in r else {}),
        })
    n = len(rows)
    summary = {
        "files": n,
        "latent_identical_device_vs_its_cpu": sum(r["latent_device"] == r["latent_cpu"] for r in rows),
        "latent_identical_here": sum(r["latent_here_same"] for r in rows),
        "pixels_identical_here_vs_device": sum(r["here_vs_device"]["identical"] for r in rows),
        "pixels_identical_its_cpu_vs_device": sum(r["device_vs_its_cpu"]["identical"] for r in rows),
        "max_abs_here_vs_device": max(r["here_vs_device"]["max_abs"] for r in rows),
        "pixels_differing_here_vs_device": sum(r["here_vs_device"]["pixels_differing"] for r in rows),
        "pixels_total": sum(r["here_vs_device"]["pixels"] for r in rows),
        "encode_same_bytes_here": sum(r["here_encode_same_bytes"] for r in rows),
        **({"exact_identical_here": sum(r["exact_here_same"] for r in rows),
            "exact_identical_its_cpu": sum(r["exact_cpu"] == r["exact_device"] for r in rows)}
           if all("exact_device" in r for r in rows) else {}),
        "here": {"cpu": __import__("platform").machine(), "threads": torch.get_num_threads(), "torch": torch.__version__},
    }
    print(json.dumps(summary, indent=1))
    if args.record:
        rec = Path(args.record)
        rec.with_suffix(".json").write_text(json.dumps({"summary": summary, "manifest": {**manifest, "files": rows}}, indent=1))
        rec.with_suffix(".md").write_text(report(manifest, rows, summary))
    return 0 if summary["latent_identical_here"] == n else 1


def report(manifest: dict, rows: list[dict], s: dict) -> str:
    sp = manifest["speed_768x512"]
    lines = [
        "# Cross-device decoding",
        "",
        f"Written on **{manifest['device_name']}** ({manifest['device']}, torch {manifest['torch']}), model "
        f"`{manifest['model']}` ({manifest['fingerprint']}); decoded there on the GPU and on that machine's CPU, "
        f"and here on a {s['here']['cpu']} CPU with {s['here']['threads']} threads (torch {s['here']['torch']}).",
        "GPU convolutions: " + ("IEEE float32 (TF32 off)." if not manifest.get("tf32", True) else
                                "TF32 (torch's default for cuDNN; written before the codec turned TF32 off)."),
        "",
        "Commands: `python -m benchmarks.cross_device write --device cuda --out runs/xdev` on the GPU machine, "
        "then `python -m benchmarks.cross_device check runs/xdev --record docs/results/cross_device` here.",
        "",
        f"- Files: {s['files']} (3 photos, a 1536x1024 mosaic that is coded in tiles, 37x53 L, 100x77 RGBA, 1x1; "
        f"qualities {sorted({r['quality'] for r in rows})}).",
        f"- Decoded latent (symbols and means, the integer path's output) bit-identical: "
        f"{s['latent_identical_here']}/{s['files']} here, {s['latent_identical_device_vs_its_cpu']}/{s['files']} on the "
        "GPU machine's CPU.",
        f"- Pixels identical to the GPU's decode: {s['pixels_identical_here_vs_device']}/{s['files']} files here, "
        f"{s['pixels_identical_its_cpu_vs_device']}/{s['files']} on the GPU machine's CPU; here "
        f"{s['pixels_differing_here_vs_device']} of {s['pixels_total']} pixels differ, by at most "
        f"{s['max_abs_here_vs_device']} level(s).",
        f"- A CPU encode here gives the same bytes as the GPU's encode for {s['encode_same_bytes_here']}/{s['files']} "
        "files (the analysis transform is float; either file decodes exactly everywhere).",
        (f"- `decompress --exact` (fixed-point synthesis): pixels identical to the GPU's for {s['exact_identical_here']}/"
         f"{s['files']} files here and {s['exact_identical_its_cpu']}/{s['files']} on the GPU machine's CPU."
         if "exact_identical_here" in s else "- `decompress --exact` did not exist when these files were written."),
        "",
        "| file | bytes | latent same here | pixels differing here vs GPU (max) | pixels differing GPU machine CPU vs GPU (max) | CPU encode same bytes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["here_vs_device"], r["device_vs_its_cpu"]
        lines.append(f"| {r['file']} | {r['bytes']} | {'yes' if r['latent_here_same'] else 'NO'} | "
                     f"{a['pixels_differing']} ({a['max_abs']}) | {b['pixels_differing']} ({b['max_abs']}) | "
                     f"{'yes' if r['here_encode_same_bytes'] else 'no'} |")
    lines += ["", "Speed of one 768x512 image (median of 5, after one warm-up), on the GPU machine:", "",
              "| where | compress s | decompress s |", "|---|---|---|"]
    for name, v in sp.items():
        lines.append(f"| {manifest['device_name'] if name == 'device' else 'its CPU'} | {v['compress_s']} | {v['decompress_s']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--device", default="cuda")
    w.add_argument("--out", required=True)
    w.add_argument("--model", default=None)
    w.add_argument("--qualities", type=lambda s: [int(v) for v in s.split(",")], default=list(QUALITIES))
    c = sub.add_parser("check")
    c.add_argument("dir")
    c.add_argument("--model", default=None)
    c.add_argument("--record", default=None)
    args = ap.parse_args()
    return write(args) if args.cmd == "write" else check(args)


if __name__ == "__main__":
    raise SystemExit(main())

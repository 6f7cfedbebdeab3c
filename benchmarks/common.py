"""What the benchmarks share: where things are, timing, measurements in fresh processes, the command
line run as a user runs it, report files, a curve's rate at a given PSNR, and the idx data sets of
the family benchmarks.

A benchmark imports this module, never another benchmark.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from aecli.progress import progress_bar  # noqa: F401  (the benchmarks' progress bar: on a terminal only)
from tools.paths import DOCS, RESULTS, ROOT, SHARED_DATA, SHARED_REFERENCE  # noqa: F401

# how the speed benchmarks code an image, said the same way in each report
OWN_SIZE = ("(`--scale 1`; by default compress also tries 11/8 from quality 2 on, about 6x the encode time: "
            "docs/codec.md, \"Coding scale\")")


def machine() -> str:
    """The machine, as the reports give it."""
    return f"{platform.machine()}, {os.cpu_count()} cores"


# --------------------------------------------------------------------------- timing


def median_time(fn, repeat: int, warmup: bool = True) -> float:
    """Median wall-clock seconds of `repeat` calls of fn() (after one untimed call if `warmup`)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def best_of_turns(calls: dict, turns: int, repeat: int) -> dict:
    """For each named call, the best of `turns` medians (each after a warm-up); the calls take
    turns, so that a slow spell of the machine falls on all of them rather than on one."""
    best = {k: float("inf") for k in calls}
    for _ in range(turns):
        for k, fn in calls.items():
            best[k] = min(best[k], median_time(fn, repeat, warmup=True))
    return best


# --------------------------------------------------------------------------- fresh processes

CHILD = "--child"  # the first argument of a benchmark run as a measurement child (see run_child)


def run_child(module: str, *args, error: str = "") -> dict:
    """Run `python -m MODULE --child ARGS...` in a fresh process (its own imports, model load and peak
    RSS), in this folder and environment (so with the benchmarks and aecli this process has), and
    return the JSON object it prints last.  A failure stops the benchmark with `error` and the
    child's stderr."""
    r = subprocess.run([sys.executable, "-m", module, CHILD, *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{error}\n{r.stderr}" if error else r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def child_args(argv: list[str] | None = None) -> list[str] | None:
    """The arguments after --child when this process is a measurement child (run_child), else None."""
    argv = sys.argv[1:] if argv is None else argv
    return argv[1:] if argv[:1] == [CHILD] else None


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss: torch, the model and the data included), MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def aecli(*args, log: Path) -> str:
    """Run the command line, as a user would; stdout returned, stderr appended to the log; a failure
    stops the benchmark."""
    cmd = [sys.executable, "-m", "aecli", *[str(a) for a in args]]
    with open(log, "a") as f:
        f.write("$ aecli " + " ".join(str(a) for a in args) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"aecli {' '.join(map(str, args))} failed (see {log})")
    return r.stdout


# --------------------------------------------------------------------------- reports


def write_report(out: Path, name: str, result: dict, lines: list[str]) -> None:
    """OUT/NAME.json (the numbers) and OUT/NAME.md (the table, `lines`); the table is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# --------------------------------------------------------------------------- rate-distortion


def cbsd432_crop(name: str, size: int) -> np.ndarray:
    """The centre size x size crop (RGB, uint8) of CBSD432 training image `name`; the whole image
    when `size` is at least its longer side."""
    from PIL import Image

    im = np.asarray(Image.open(SHARED_DATA / "CBSD432" / name).convert("RGB"))
    h, w = im.shape[:2]
    if size >= max(h, w):
        return np.ascontiguousarray(im)
    size = min(size, h, w)
    t, l = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(im[t:t + size, l:l + size])


def rate_at(curve: list[tuple[float, float]], target_psnr: float) -> float | None:
    """bpp of the (bpp, psnr) curve at target_psnr, log-linear between its points; None outside it."""
    pts = sorted(curve, key=lambda p: p[1])
    for (r0, p0), (r1, p1) in zip(pts, pts[1:]):
        if p0 <= target_psnr <= p1 and p1 > p0:
            t = (target_psnr - p0) / (p1 - p0)
            return float(np.exp(np.log(r0) + t * (np.log(r1) - np.log(r0))))
    return None


# --------------------------------------------------------------------------- idx data sets (FashionMNIST, MNIST)

FMNIST_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_split(images: np.ndarray, labels: np.ndarray, out: Path, names: list[str] | None) -> None:
    from PIL import Image

    marker = out / ".complete"
    if marker.exists() and marker.read_text().strip() == str(len(images)):
        return
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = out / (names[lab] if names else str(lab))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(d / f"{i:05d}.png", compress_level=1)
    marker.write_text(str(len(images)))


def convert(src: Path, out: Path, names: list[str] | None = None) -> dict[str, Path]:
    """The idx files of `src` as image folders OUT/train and OUT/test, one subfolder per label
    (python -m benchmarks.idx_folders)."""
    done = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img, lab = src / f"{prefix}-images-idx3-ubyte.gz", src / f"{prefix}-labels-idx1-ubyte.gz"
        if img.exists() and lab.exists():
            write_split(read_idx(img), read_idx(lab), out / split, names)
            done[split] = out / split
    return done


def vae_elbo(model: str, folder: Path, samples: int = 10):
    """Per-image reconstruction (Bernoulli, nats) and KL terms of a VAE's ELBO on a folder's images,
    the reconstruction averaged over `samples` posterior draws (seeded)."""
    import torch

    from aecli.family import api
    from aecli.family import models as fm
    from aecli.family.data import load_folder

    m = api.load(model).model
    x = load_folder(folder, m.shape, quiet=True).floats()
    g = torch.Generator().manual_seed(0)
    recon, kl = [], []
    with torch.no_grad():
        for c in x.split(1000):
            mu, logvar = m.posterior(c)
            kl.append(fm.kl_normal(mu, logvar))
            r = 0
            for _ in range(samples):
                z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
                r = r + fm.reconstruction_error(c, m.decode_logits(z), "bce", logits=True) * c[0].numel()
            recon.append(r / samples)
    return torch.cat(recon), torch.cat(kl)

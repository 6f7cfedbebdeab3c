"""Development run that chose the anomaly score's pooling (`--score-pool`), on MNIST, not FashionMNIST.

    python -m benchmarks.family_score_dev [--data ../shared/data]

MNIST's 10k test images (the only MNIST split here) are cut in two: the first 5000 train one
model per digit (the dense 784-512-128-16 autoencoder of the one-class benchmark, MSE, Adam 1e-3,
batch 128, 60 epochs, seed 0), the last 5000 are scored; AUROC with "not this digit" as positive,
for the residual's squared error averaged per pixel (pool 1) and over 2x2, 4x4 and 7x7 block
means. The pool with the best mean became the default (2). Prints the table; writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aecli.family import models as fm

from .common import SHARED_DATA, read_idx

POOLS = (1, 2, 4, 7)


def train(x: np.ndarray, epochs: int = 60, batch: int = 128, lr: float = 1e-3):
    torch.manual_seed(0)
    m = fm.build({**fm.default_config("dense", (1, 28, 28), 16), "hidden": [512, 128]})
    opt = torch.optim.Adam(m.parameters(), lr)
    t = torch.tensor(x, dtype=torch.float32)[:, None]
    for _ in range(epochs):
        perm = torch.randperm(len(t))
        for i in range(0, len(t), batch):
            xb = t[perm[i : i + batch]]
            loss = fm.reconstruction_error(xb, m.decode_logits(m.encode(xb)), "mse", logits=True).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return m.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    a = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    x = read_idx(a.data / "MNIST" / "t10k-images-idx3-ubyte.gz") / 255.0
    y = read_idx(a.data / "MNIST" / "t10k-labels-idx1-ubyte.gz")
    xa, ya, xb, yb = x[:5000], y[:5000], x[5000:], y[5000:]
    test = torch.tensor(xb, dtype=torch.float32)[:, None]
    res: dict[int, list[float]] = {p: [] for p in POOLS}
    print("| digit | " + " | ".join(f"pool {p}" for p in POOLS) + " |")
    print("|---|" + "---:|" * len(POOLS))
    for k in range(10):
        m = train(xa[ya == k])
        with torch.no_grad():
            d = m(test) - test
        for p in POOLS:
            res[p].append(roc_auc_score((yb != k).astype(int), (F.avg_pool2d(d, p) ** 2).flatten(1).mean(1).numpy()))
        print(f"| {k} | " + " | ".join(f"{res[p][-1]:.4f}" for p in POOLS) + " |", flush=True)
    print("| **mean** | " + " | ".join(f"{np.mean(res[p]):.4f}" for p in POOLS) + " |")


if __name__ == "__main__":
    main()

"""What the bundled family models (weights/fashion-ae.*, weights/fashion-vae.*) do, on data they
never saw, through the CLI as a user would run it.

    python -m benchmarks.family_bundled [--data ../shared/data] [--out docs/results]

Writes OUT/family_bundled.{md,json}:
1. fashion-ae's codes as features: a logistic-regression probe fitted on the codes of the 60,000
   FashionMNIST training images, tested on the 10,000 test images, beside PCA codes of the same size;
2. its anomaly flags (`aecli score`, the threshold stored in the model): the share flagged among
   the FashionMNIST test images (normal: about 1% by construction), among the 10,000 MNIST digits
   and among the 24 Kodak photos (neither is clothing), and the AUROC of FashionMNIST test against
   MNIST;
3. fashion-vae's test ELBO (nats per image, 10 posterior samples) and a sample grid.
The models were trained on the training images alone (scripts/train_family.sh); nothing here was
used to choose them.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .common import FMNIST_NAMES, RESULTS, ROOT, SHARED_DATA, aecli, convert, progress_bar, read_idx, vae_elbo


def probe(fmnist: Path, work: Path, log: Path) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = {}
    for split in ("train", "test"):
        out = work / f"codes-{split}.npz"
        aecli("embed", fmnist / split, "-o", out, "-q", log=log)
        z[split] = np.load(out)
    idx = {s: np.array([int(Path(p).stem) for p in z[s]["paths"]]) for s in z}  # embed's order -> raw order
    raw = {s: read_idx(Path(DATA / "FashionMNIST" / f"{p}-images-idx3-ubyte.gz")).reshape(-1, 784)[idx[s]] / 255.0
           for s, p in (("train", "train"), ("test", "t10k"))}
    pca = PCA(z["train"]["codes"].shape[1], random_state=0).fit(raw["train"])

    def fit(a, b):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(a, z["train"]["labels"])
        return float((clf.predict(b) == z["test"]["labels"]).mean())

    return {"dims": int(z["train"]["codes"].shape[1]), "aecli_codes": fit(z["train"]["codes"], z["test"]["codes"]),
            "pca_codes": fit(pca.transform(raw["train"]), pca.transform(raw["test"]))}


def anomalies(fmnist: Path, mnist: Path, kodak: Path, log: Path) -> dict:
    from sklearn.metrics import roc_auc_score

    res = {}
    s = {}
    for name, folder in (("FashionMNIST test", fmnist / "test"), ("MNIST test", mnist / "test"), ("Kodak24", kodak)):
        rows = list(csv.DictReader(io.StringIO(aecli("score", folder, "-q", log=log))))
        v = np.array([float(r["score"]) for r in rows])
        flags = np.array([int(r["anomaly"]) for r in rows])
        s[name] = v
        res[name] = {"images": len(v), "flagged": float(flags.mean()), "median_score": float(np.median(v))}
    y = np.r_[np.zeros(len(s["FashionMNIST test"])), np.ones(len(s["MNIST test"]))]
    res["auroc_fmnist_vs_mnist"] = float(roc_auc_score(y, np.r_[s["FashionMNIST test"], s["MNIST test"]]))
    return res


def vae(fmnist: Path, out: Path, log: Path) -> dict:
    recon, kl = vae_elbo("fashion-vae", fmnist / "test")
    aecli("sample", "-n", "64", "-o", out / "family_bundled_samples.png", "--seed", "0", "-q", log=log)
    return {"test_recon_nats": float(recon.mean()), "test_kl_nats": float(kl.mean()), "test_elbo_nats": float(-(recon + kl).mean())}


def write_md(res: dict, path: Path) -> None:
    a, p, v = res["anomaly"], res["probe"], res["vae"]
    L = ["# The bundled family models on data they never saw", "",
         f"Command: `{res['command']}`. Machine: {res['machine']} ({res['date']}). Models: "
         + ", ".join(f"`{k}` ({m['fingerprint']}, {m['steps']} steps, {m['seconds']:.0f} s)" for k, m in res["models"].items())
         + ", trained on the FashionMNIST training images by `scripts/train_family.sh`.", "",
         "## fashion-ae: anomaly flags (`aecli score`, threshold from the training images)", "",
         "| images | count | flagged | median score |", "|---|---:|---:|---:|"]
    for k in ("FashionMNIST test", "MNIST test", "Kodak24"):
        L.append(f"| {k} | {a[k]['images']} | {100 * a[k]['flagged']:.1f}% | {a[k]['median_score']:.4f} |")
    L += ["", f"AUROC, FashionMNIST test (normal) against MNIST digits (anomalies): {a['auroc_fmnist_vs_mnist']:.4f}.", "",
          f"## fashion-ae: codes as features ({p['dims']}-d, logistic regression, FashionMNIST test accuracy)", "",
          "| features | accuracy |", "|---|---:|", f"| `aecli embed` codes | {p['aecli_codes']:.4f} |",
          f"| PCA codes, same size | {p['pca_codes']:.4f} |", "",
          "## fashion-vae", "",
          f"Test ELBO {v['test_elbo_nats']:.1f} nats per image = reconstruction {v['test_recon_nats']:.1f} + KL "
          f"{v['test_kl_nats']:.1f} (10 posterior samples per image). `aecli sample -n 64 --seed 0`:", "",
          "![samples](family_bundled_samples.png)", ""]
    path.write_text("\n".join(L))


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "family-bundled")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    DATA = a.data
    a.work.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.work / "benchmark.log"
    folders = ROOT / "runs" / "family-data"
    fmnist = convert(a.data / "FashionMNIST", folders / "fmnist", FMNIST_NAMES)["train"].parent
    mnist = convert(a.data / "MNIST", folders / "mnist")["test"].parent
    from aecli import registry

    models = {m.name: m for m in registry.bundled()}
    res = {"command": "python -m benchmarks.family_bundled", "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
           "date": time.strftime("%Y-%m-%d"),
           "models": {k: {"fingerprint": models[k].meta["fingerprint"], "steps": models[k].meta["training"]["steps"],
                          "seconds": models[k].meta["training"]["seconds"]} for k in ("fashion-ae", "fashion-vae")}}
    parts = [("anomaly", lambda: anomalies(fmnist, mnist, a.data / "Kodak24", log)),
             ("probe", lambda: probe(fmnist, a.work, log)), ("vae", lambda: vae(fmnist, a.out, log))]
    with progress_bar() as bar:
        job = bar.add_task("bundled family models", total=len(parts), stats="")
        for name, fn in parts:
            res[name] = fn()
            bar.advance(job)
    (a.out / "family_bundled.json").write_text(json.dumps(res, indent=2) + "\n")
    write_md(res, a.out / "family_bundled.md")
    print((a.out / "family_bundled.md").read_text())


DATA = SHARED_DATA  # set by main()
if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The exact recipe of the bundled autoencoder-family models, so that `aecli embed`, `score`,
# `reconstruct` and `sample` work right after install:
#   weights/fashion-ae.*   dense 784-256-32 autoencoder (relu code, sigmoid output), BCE, Adam lr 1e-3,
#                          20 epochs of batch 256: the default model of embed, score and reconstruct
#   weights/fashion-vae.*  VAE 784-512-16 (Gaussian posterior, Bernoulli decoder), ELBO, Adam lr 1e-3,
#                          20 epochs of batch 128: the default model of sample
# Data: the 60,000 FashionMNIST training images (MIT licence) as PNG folders, one per label
# (benchmarks/idx_folders.py); a seeded 10% (6,000) is held out for validation and for nothing
# else. The FashionMNIST test images are the family benchmarks' evaluation set and are never
# used here. Seed 0, 2 CPU threads.
# Resumable: run it again to continue from RUNS/NAME/checkpoint.pt. Then install with
#   for m in fashion-ae fashion-vae; do cp runs/$m/$m.safetensors runs/$m/$m.json weights/; done
#
#   SRC=../shared/data/FashionMNIST bash scripts/train_family.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${SRC:-../shared/data/FashionMNIST}
FOLDERS=${FOLDERS:-runs/family-data/fmnist}
RUNS=${RUNS:-runs}
THREADS=${THREADS:-2}
python -m benchmarks.idx_folders --src "$SRC" --out "$FOLDERS" --names fmnist
train() {
  local name=$1; shift
  local resume=()
  [ -f "$RUNS/$name/checkpoint.pt" ] && resume=(--resume)
  aecli train "$FOLDERS/train" --out "$RUNS/$name" --seed 0 --val-split 0.1 --threads "$THREADS" "$@" "${resume[@]}"
}
train fashion-ae --model dense --hidden 256 --latent-dim 32 --loss bce --optimizer adam --lr 1e-3 --epochs 20 --batch-size 256
train fashion-vae --model vae --hidden 512 --latent-dim 16 --loss bce --optimizer adam --lr 1e-3 --epochs 20 --batch-size 128

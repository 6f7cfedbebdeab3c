#!/usr/bin/env bash
# The exact recipe of the bundled denoising model weights/dn.* (U-Net denoising autoencoder,
# widths 24,48,96,192 (4 scales), 1 residual block per scale, noise-level map input, residual
# output; about 1.3 M parameters). Sized for CPU training and CPU inference (about 0.3 s for a
# 481x321 image on 2 cores).
# Trains on CBSD432 only (the last 8 images in sorted order are held out for validation) with
# synthetic Gaussian noise, sigma drawn per sample from 0..50 (blind-capable: the level map is
# the true sigma in training and the estimated one at blind inference), 20% of the samples
# gray, 25% rounded and clipped to 8 bits, L1 loss, batch 16 of 64x64 crops, Adam lr 5e-4
# (divided by 10 after 90% of STEPS).
# History of the bundled run: steps 0-5200 on one CPU thread (6,813 s; lr 5e-5 from step 4766);
# steps 5200-18193 on one H200 GPU with scripts/train_gpu.sh (batch 64 of 128x128 crops, Adam
# moments restarted; lr 5e-4 to step 12702, then 5e-5), 10.3 minutes. Held-out validation at
# step 18193: 32.77 / 30.02 / 26.66 dB at sigma 15 / 25 / 50 (at step 5200: 32.43 / 29.69 / 26.30).
# Resumable: run it again to continue from runs/dn/checkpoint.pt, or, on a fresh clone, from the
# committed checkpoints/dn/checkpoint.pt (refresh that copy when you stop). Then install the
# result with
#   cp runs/dn/dn.safetensors runs/dn/dn.json weights/
# and record its numbers with
#   python -m benchmarks.denoise_eval --model dn --out docs/results --name denoise_eval
#
#   DATA=../shared/data/CBSD432 STEPS=20000 THREADS=1 bash scripts/train_denoise.sh
set -euo pipefail
DATA=${DATA:-../shared/data/CBSD432}
OUT=${OUT:-runs/dn}
STEPS=${STEPS:-20000}
DEVICE=${DEVICE:-auto}
THREADS=${THREADS:-1}
SEED_CKPT=${SEED_CKPT:-checkpoints/dn/checkpoint.pt}
if [ ! -f "$OUT/checkpoint.pt" ] && [ -f "$SEED_CKPT" ]; then
  mkdir -p "$OUT" && cp "$SEED_CKPT" "$OUT/checkpoint.pt"
fi
RESUME=()
[ -f "$OUT/checkpoint.pt" ] && RESUME=(--resume)
exec aecli train "$DATA" --out "$OUT" --task denoise --model unet --channels 24,48,96,192 --blocks 1 \
  --sigma-range 0,50 --steps "$STEPS" --batch-size 16 --patch 64 --lr 5e-4 --seed 0 --holdout 8 \
  --log-every 100 --ckpt-every 500 --val-every 2000 --device "$DEVICE" --threads "$THREADS" "${RESUME[@]}"

#!/usr/bin/env bash
# The exact recipe of the bundled denoising model weights/dn.* (U-Net denoising autoencoder,
# widths 32,64,128, 2 residual blocks per scale, noise-level map input, residual output).
# Trains on CBSD432 only (the last 8 images in sorted order are held out for validation) with
# synthetic Gaussian noise, sigma drawn per sample from 0..50 (blind-capable: the level map is
# the true sigma in training and the estimated one at blind inference), 20% of the samples
# gray, 25% rounded and clipped to 8 bits, L1 loss, Adam lr 2e-4 (divided by 10 after 90%).
# Resumable: run it again to continue from runs/dn/checkpoint.pt; raise STEPS to train longer.
# A GPU is advised (DEVICE=cuda); then install the result with
#   cp runs/dn/dn.safetensors runs/dn/dn.json weights/
# and record its numbers with
#   python benchmarks/denoise_eval.py --model dn --out docs --name denoise_eval
#
#   DATA=../shared/data/CBSD432 STEPS=200000 DEVICE=cuda bash scripts/train_denoise.sh
set -euo pipefail
DATA=${DATA:-../shared/data/CBSD432}
OUT=${OUT:-runs/dn}
STEPS=${STEPS:-200000}
DEVICE=${DEVICE:-auto}
THREADS=${THREADS:-0}
RESUME=()
[ -f "$OUT/checkpoint.pt" ] && RESUME=(--resume)
exec aecli train "$DATA" --out "$OUT" --task denoise --model unet --channels 32,64,128 --sigma-range 0,50 \
  --steps "$STEPS" --batch-size 16 --patch 128 --lr 2e-4 --seed 0 --holdout 8 \
  --log-every 100 --ckpt-every 1000 --val-every 5000 --device "$DEVICE" --threads "$THREADS" "${RESUME[@]}"

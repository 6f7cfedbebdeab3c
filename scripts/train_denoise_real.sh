#!/usr/bin/env bash
# The recipe of the bundled real-noise denoiser weights/dn-real.* (`aecli denoise`'s blind default):
# the U-Net of weights/dn (widths 24,48,96,192, 1 residual block per scale, noise-level map input)
# with a small noise-level estimator in front (aecli/denoise/model.py), initialised from the
# bundled Gaussian denoiser `dn` (its U-Net weights copied; the estimator starts fresh), trained on
# CBSD432 only (the last 8 images in sorted order held out for validation) with the realistic
# degradations of aecli/denoise/degrade.py (camera pipeline: unprocessing, Poisson-Gaussian sensor
# noise on a Bayer mosaic, demosaicing, colour matrix, tone curve, in-camera low-pass, JPEG; plus
# plain Gaussian noise and clean crops), L1 loss plus the estimator's error where the noise level
# is known, seed 0.
#
# Segments are bounded by time (the GPU recipe) or by steps (the CPU one). Each segment is recorded
# in the checkpoint (steps from/to, hardware, seconds, batch, crop, lr), and the exported JSON's
# "training" block copies them.
#
#   GPU (scripts/gpu_session.sh runs this):  DEVICE=cuda A_SECONDS=380 B_SECONDS=90 bash scripts/train_denoise_real.sh
#   CPU, in the background, resumable:       DEVICE=cpu STEPS=8000 bash scripts/train_denoise_real.sh
#
# The bundled weights/dn-real (docs/denoise_real.md, "Training record") were made in two stages:
#   1. on an H200 (two calls of scripts/gpu_session.sh, 2026-12-04): steps 0 -> 15,359 from `dn`, with
#      the first degradation ranges; kept as checkpoints/dn-real/gpu-stage1.pt;
#   2. here, on the 2-core CPU, from stage 1's weights with today's ranges, three runs into the same
#      folder (the second and third resume with a changed schedule, which the checkpoint records):
#        DEVICE=cpu THREADS=2 STEPS=4000 INIT=checkpoints/dn-real/gpu-stage1.pt SEED_CKPT=/none bash scripts/train_denoise_real.sh  # to 706
#        DEVICE=cpu THREADS=2 STEPS=2000 bash scripts/train_denoise_real.sh   # 706 -> 2,000 (lr 1e-5 from 1,800)
#        DEVICE=cpu THREADS=2 STEPS=6000 bash scripts/train_denoise_real.sh   # 2,000 -> 6,000 (lr 1e-4, 1e-5 from 5,400)
#
# Install with: cp runs/dn-real/dn-real.safetensors runs/dn-real/dn-real.json weights/
# (and the checkpoint, slimmed: python -m scripts.slim_checkpoint runs/dn-real/checkpoint.pt checkpoints/dn-real/checkpoint.pt;
# a later run continues from it: SEED_CKPT is copied into an empty OUT)
set -uo pipefail
DATA=${DATA:-../shared/data/CBSD432}
OUT=${OUT:-runs/dn-real}
DEVICE=${DEVICE:-auto}
AECLI=${AECLI:-aecli}
SEED_CKPT=${SEED_CKPT:-checkpoints/dn-real/checkpoint.pt}
recipe=(--task denoise --real-noise --channels 24,48,96,192 --blocks 1 --seed 0 --holdout 8 --device "$DEVICE")
if [ ! -f "$OUT/checkpoint.pt" ] && [ -f "$SEED_CKPT" ]; then
  mkdir -p "$OUT" && cp "$SEED_CKPT" "$OUT/checkpoint.pt"
fi
start=(--init "${INIT:-dn}")
[ -f "$OUT/checkpoint.pt" ] && start=(--resume)
if [ -n "${A_SECONDS:-}" ]; then  # time-bounded segments (the GPU recipe)
  common=(--batch-size 64 --patch 128 --steps 100000000 --log-every 200 --ckpt-every 2000 --val-every 100000000 --threads 4)
  $AECLI train "$DATA" --out "$OUT" "${recipe[@]}" "${common[@]}" "${start[@]}" --lr 2e-4 --time-limit "${A_SECONDS:-380}" || exit
  exec $AECLI train "$DATA" --out "$OUT" "${recipe[@]}" "${common[@]}" --resume --lr 2e-5 --time-limit "${B_SECONDS:-90}"
fi
# CPU: batch 16 of 64x64 crops, lr 1e-4 divided by 10 after 90% of STEPS
exec $AECLI train "$DATA" --out "$OUT" "${recipe[@]}" "${start[@]}" --steps "${STEPS:-8000}" --batch-size 16 --patch 64 \
  --lr 1e-4 --log-every 100 --ckpt-every 500 --val-every 2000 --threads "${THREADS:-1}"

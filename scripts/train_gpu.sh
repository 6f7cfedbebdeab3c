#!/usr/bin/env bash
# GPU recipe of the bundled codec (weights/hp.*) and denoiser (weights/dn.*): both continue from
# their checkpoints at the same time on one GPU (neither model fills it alone), each in two
# segments bounded by time rather than steps:
#
#   codec (hyperprior 64,128):   batch 16 of 256x256 crops, lr 1e-4 for A_SECONDS, then 1e-5 for B_SECONDS
#   denoiser (U-Net 24..192):    batch 64 of 128x128 crops, lr 5e-4 for A_SECONDS, then 5e-5 for B_SECONDS
#
# Data: CBSD432 only (the last 8 images in sorted order held out for validation), as in
# scripts/train_codec.sh and scripts/train_denoise.sh, whose recipes these runs continue.
# Each checkpoint records its segments (steps from/to, hardware, seconds, batch, crop, lr), so a
# segment can be replayed exactly with --steps instead of --time-limit.
#
# The bundled weights came from one run of this script on an H200 (A_SECONDS=360 B_SECONDS=70),
# then one more low-lr segment of 190 s for each model on the same machine:
#   aecli train DATA --out runs/hp --task codec   --resume --lr 1e-5 --time-limit 190 --steps 100000000 --device cuda
#   aecli train DATA --out runs/dn --task denoise --resume --lr 5e-5 --time-limit 190 --steps 100000000 --device cuda
# codec: 26789 -> 37016 (lr 1e-4) -> 38840 -> 44444 (lr 1e-5); denoiser: 5200 -> 12702 (lr 5e-4)
# -> 14107 -> 18193 (lr 5e-5). The exact step ranges are in each checkpoint's "segments".
# The GPU ran at 55-70% utilisation with both (the Python side of each step is the limit).
#
# Then install the results with
#   cp runs/hp/hp.safetensors runs/hp/hp.json runs/dn/dn.safetensors runs/dn/dn.json weights/
#   cp runs/hp/checkpoint.pt checkpoints/hp/ && cp runs/dn/checkpoint.pt checkpoints/dn/
#
#   DATA=../shared/data/CBSD432 A_SECONDS=420 B_SECONDS=75 bash scripts/train_gpu.sh
set -uo pipefail
DATA=${DATA:-../shared/data/CBSD432}
RUNS=${RUNS:-runs}
A=${A_SECONDS:-420}
B=${B_SECONDS:-75}
DEVICE=${DEVICE:-cuda}
HP_SEED=${HP_SEED:-checkpoints/hp/checkpoint.pt}
DN_SEED=${DN_SEED:-checkpoints/dn/checkpoint.pt}
AECLI=${AECLI:-aecli}  # where the package is not installed: AECLI="python3 -m aecli"

for pair in "$HP_SEED:$RUNS/hp" "$DN_SEED:$RUNS/dn"; do
  src=${pair%%:*} dst=${pair#*:}
  if [ ! -f "$dst/checkpoint.pt" ]; then mkdir -p "$dst" && cp "$src" "$dst/checkpoint.pt"; fi
done

common=(--resume --steps 100000000 --device "$DEVICE" --threads 4 --log-every 200 --ckpt-every 2000
        --val-every 100000000 --holdout 8)  # validation at the end of each segment
codec() {
  $AECLI train "$DATA" --out "$RUNS/hp" --task codec --batch-size 16 --patch 256 --lr "$1" --time-limit "$2" "${common[@]}"
}
denoise() {
  $AECLI train "$DATA" --out "$RUNS/dn" --task denoise --batch-size 64 --patch 128 --lr "$1" --time-limit "$2" "${common[@]}"
}

(codec 1e-4 "$A" && codec 1e-5 "$B") >"$RUNS/hp.gpu.log" 2>&1 &
hp=$!
(denoise 5e-4 "$A" && denoise 5e-5 "$B") >"$RUNS/dn.gpu.log" 2>&1 &
dn=$!
wait $hp; rc_hp=$?
wait $dn; rc_dn=$?
echo "codec exit $rc_hp, denoiser exit $rc_dn"
tail -n 4 "$RUNS/hp.gpu.log" "$RUNS/dn.gpu.log"
exit $((rc_hp || rc_dn))

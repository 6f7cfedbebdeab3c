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
# The bundled denoiser came from one run of this script on an H200 (A_SECONDS=360 B_SECONDS=70),
# then one more low-lr segment of 190 s on the same machine:
#   aecli train DATA --out runs/dn --task denoise --resume --lr 5e-5 --time-limit 190 --steps 100000000 --device cuda
# denoiser: 5200 -> 12702 (lr 5e-4) -> 14107 -> 18193 (lr 5e-5). The GPU ran at 55-70% with both models.
# The bundled codec had that run too (26789 -> 37016 at lr 1e-4 -> 38840 -> 44444 at lr 1e-5, batch 16),
# then, in a second session, the codec alone with a batch of 32 (the uint8 crops go to the GPU and the
# step's statistics stay there until logged: 34.5 steps/s, GPU at about 38%):
#   ONLY=hp HP_BATCH=32 A_SECONDS=345 B_SECONDS=105 bash scripts/train_gpu.sh   # 44444 -> 56274 -> 60238
#   aecli train DATA --out runs/hp --task codec --resume --lr 1e-5 --time-limit 150 (+ the common options below)
#                                                                               # 60238 -> 65420
# The exact step ranges are in each checkpoint's "segments".
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
ONLY=${ONLY:-}  # "hp" or "dn": continue one model alone (it then has the GPU to itself)
HP_BATCH=${HP_BATCH:-16}
WIDEN=${WIDEN:-}  # e.g. "--n 128": with ONLY=hp, also train beside it a copy of the codec widened
# by scripts/widen_codec.py with these options (it starts as the same function) in $RUNS/wide/hp;
# afterwards keep the one with the better held-out validation (the last "val" of each train.log)
PYTHON=${PYTHON:-python3}

for pair in "$HP_SEED:$RUNS/hp" "$DN_SEED:$RUNS/dn"; do
  src=${pair%%:*} dst=${pair#*:}
  case "$ONLY:$dst" in hp:*/dn|dn:*/hp) continue ;; esac
  if [ ! -f "$dst/checkpoint.pt" ]; then mkdir -p "$dst" && cp "$src" "$dst/checkpoint.pt"; fi
done

common=(--resume --steps 100000000 --device "$DEVICE" --threads 4 --log-every 200 --ckpt-every 2000
        --val-every 100000000 --holdout 8)  # validation at the end of each segment
codec() {
  $AECLI train "$DATA" --out "$RUNS/hp" --task codec --batch-size "$HP_BATCH" --patch 256 --lr "$1" --time-limit "$2" "${common[@]}"
}
denoise() {
  $AECLI train "$DATA" --out "$RUNS/dn" --task denoise --batch-size 64 --patch 128 --lr "$1" --time-limit "$2" "${common[@]}"
}

rc_hp=0 rc_dn=0 rc_wide=0
if [ -n "$WIDEN" ]; then
  [ "$ONLY" = hp ] || { echo "WIDEN needs ONLY=hp" >&2; exit 2; }
  if [ ! -f "$RUNS/wide/hp/checkpoint.pt" ]; then
    # shellcheck disable=SC2086  # WIDEN holds several options
    $PYTHON -m scripts.widen_codec "$HP_SEED" $WIDEN --out "$RUNS/wide/hp" --data "$DATA" --no-export || exit 1
  fi
  (RUNS="$RUNS/wide" codec 1e-4 "$A" && RUNS="$RUNS/wide" codec 1e-5 "$B") >"$RUNS/wide.gpu.log" 2>&1 & wide=$!
fi
if [ "$ONLY" != dn ]; then (codec 1e-4 "$A" && codec 1e-5 "$B") >"$RUNS/hp.gpu.log" 2>&1 & hp=$!; fi
if [ "$ONLY" != hp ]; then (denoise 5e-4 "$A" && denoise 5e-5 "$B") >"$RUNS/dn.gpu.log" 2>&1 & dn=$!; fi
if [ "$ONLY" != dn ]; then wait $hp; rc_hp=$?; tail -n 4 "$RUNS/hp.gpu.log"; fi
if [ "$ONLY" != hp ]; then wait $dn; rc_dn=$?; tail -n 4 "$RUNS/dn.gpu.log"; fi
if [ -n "$WIDEN" ]; then wait $wide; rc_wide=$?; tail -n 4 "$RUNS/wide.gpu.log"; fi
echo "codec exit $rc_hp, denoiser exit $rc_dn, widened codec exit $rc_wide"
exit $((rc_hp || rc_dn || rc_wide))

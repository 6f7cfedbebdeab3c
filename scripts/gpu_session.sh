#!/usr/bin/env bash
# The one command of a call on a lent GPU machine, run there in the repository root after
# scripts/gpu_prepare.sh here (device run: `bash scripts/gpu_session.sh`, carry [".gpu"], timeout 590).
# Side by side on the one GPU, each for A_SECONDS at the higher learning rate, then B_SECONDS at a
# tenth of it:
#
# 1. the real-noise denoiser dn-real (scripts/train_denoise_real.sh: from the bundled `dn`, or
#    from .gpu/dn-real.pt when an earlier session started it), batch 64 of 128x128 crops;
# 2. the widened codec (N=128) from .gpu/hp-wide.pt, batch 32 of 256x256 crops (scripts/train_gpu.sh's
#    codec recipe), when gpu_prepare.sh put one there.
#
# Into $OUT: dn-real.tgz (its checkpoint without Adam's moments, exported weights, JSON and log),
# hp-wide.pt.* (the codec's checkpoint without Adam's moments, in 15 MB parts) and logs.tgz.
# The weights are exported from the checkpoint on this machine's CPU in float64 (tasks' export()), so
# the same checkpoint exported here gives the same file. docs/training.md, "Lent GPU time", says how to
# install the results.
set -uo pipefail
: "${OUT:?run on the GPU machine, where the device tool sets OUT}"
export PYTHONUNBUFFERED=1
A=${A_SECONDS:-380}
B=${B_SECONDS:-90}
AECLI="python3 -m aecli"
DEVICE=${DEVICE:-cuda}  # (DEVICE=cpu with small A_SECONDS, B_SECONDS: a dry run here)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p runs/wide/hp runs/dn-real
(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 15 > runs/util.log 2>&1 &)
[ -f .gpu/dn-real.pt ] && [ ! -f runs/dn-real/checkpoint.pt ] && cp .gpu/dn-real.pt runs/dn-real/checkpoint.pt
(DATA=.gpu/CBSD432 OUT=runs/dn-real DEVICE=$DEVICE AECLI="$AECLI" A_SECONDS=$A B_SECONDS=$B \
  bash scripts/train_denoise_real.sh) > runs/dn-real.gpu.log 2>&1 & dn=$!
wide=
if [ -f .gpu/hp-wide.pt ]; then
  [ -f runs/wide/hp/checkpoint.pt ] || cp .gpu/hp-wide.pt runs/wide/hp/checkpoint.pt
  codec() {
    $AECLI train .gpu/CBSD432 --out runs/wide/hp --task codec --batch-size 32 --patch 256 --lr "$1" --time-limit "$2" \
      --resume --steps 100000000 --device "$DEVICE" --threads 4 --log-every 200 --ckpt-every 2000 --val-every 100000000 --holdout 8
  }
  (codec 1e-4 "$A" && codec 1e-5 "$B") > runs/wide.gpu.log 2>&1 & wide=$!
fi
wait $dn; rc_dn=$?; tail -n 3 runs/dn-real.gpu.log
rc_wide=0
if [ -n "$wide" ]; then wait $wide; rc_wide=$?; tail -n 3 runs/wide.gpu.log; fi
echo "denoiser exit $rc_dn, widened codec exit $rc_wide"
if [ -f runs/dn-real/checkpoint.pt ]; then
  python3 -m scripts.slim_checkpoint runs/dn-real/checkpoint.pt runs/dn-real/slim.pt
  tar czf "$OUT/dn-real.tgz" -C runs/dn-real slim.pt dn-real.safetensors dn-real.json train.log
fi
if [ -f runs/wide/hp/checkpoint.pt ] && [ -n "$wide" ]; then
  python3 -m scripts.slim_checkpoint runs/wide/hp/checkpoint.pt runs/hp-wide.pt && split -b 15000000 runs/hp-wide.pt "$OUT/hp-wide.pt."
fi
tar czf "$OUT/logs.tgz" -C runs --ignore-failed-read dn-real.gpu.log wide.gpu.log util.log wide/hp/train.log wide/hp/hp.json 2>/dev/null
ls -la "$OUT"
exit $((rc_dn || rc_wide))

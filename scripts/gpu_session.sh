#!/usr/bin/env bash
# The one command of a call on a lent GPU machine, run there in the repository root after
# scripts/gpu_prepare.sh here (device run: `bash scripts/gpu_session.sh`, carry [".gpu"], timeout 600):
#
# 1. trains the codec on CBSD432 with scripts/train_gpu.sh: the checkpoint that scripts/gpu_prepare.sh
#    put in .gpu/hp.pt and, beside it, a copy widened by `widen_codec.py $WIDEN` (from .gpu/hp-wide.pt
#    when an earlier session started one, else widened now from .gpu/hp.pt), each for A_SECONDS at
#    lr 1e-4 then B_SECONDS at 1e-5;
# 2. writes the cross-device record with the first model's trained weights (benchmarks/cross_device.py write);
# 3. puts into $OUT the two checkpoints without Adam's moments (split in 15 MB parts), the record and
#    the logs. Here: docs/training.md, "Lent GPU time", says how to install them.
set -uo pipefail
: "${OUT:?run on the GPU machine, where the device tool sets OUT}"
export PYTHONUNBUFFERED=1
A=${A_SECONDS:-330}
B=${B_SECONDS:-100}
WIDEN=${WIDEN:---n 128}
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p runs
(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 15 > runs/util.log 2>&1 &)
if [ -f .gpu/hp-wide.pt ] && [ ! -f runs/wide/hp/checkpoint.pt ]; then
  mkdir -p runs/wide/hp && cp .gpu/hp-wide.pt runs/wide/hp/checkpoint.pt
fi
ONLY=hp WIDEN="$WIDEN" HP_BATCH=32 A_SECONDS=$A B_SECONDS=$B RUNS=runs DATA=.gpu/CBSD432 HP_SEED=.gpu/hp.pt \
  AECLI="python3 -m aecli" bash scripts/train_gpu.sh
rc=$?
for pair in runs/hp/checkpoint.pt:hp.pt runs/wide/hp/checkpoint.pt:hp-wide.pt; do
  src=${pair%%:*} name=${pair#*:}
  [ -f "$src" ] || continue
  python3 scripts/slim_checkpoint.py "$src" "runs/$name" && split -b 15000000 "runs/$name" "$OUT/$name."
done
if python3 -c "import constriction" 2>/dev/null && [ -f runs/hp/hp.safetensors ]; then
  cp runs/hp/hp.safetensors runs/hp/hp.json weights/ \
    && python3 benchmarks/cross_device.py write --device cuda --out runs/xdev > runs/xdev.log 2>&1
  tail -n 1 runs/xdev.log
  tar czf - -C runs xdev | split -b 15000000 - "$OUT/xdev.tgz."
fi
tar czf "$OUT/logs.tgz" -C runs --ignore-failed-read hp/train.log wide/hp/train.log hp.gpu.log wide.gpu.log util.log \
  xdev.log hp/hp.json wide/hp/hp.json 2>/dev/null
ls -la "$OUT"
exit $rc

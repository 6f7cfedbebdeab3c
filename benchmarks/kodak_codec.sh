#!/usr/bin/env bash
# Rate-distortion of the bundled codec on Kodak24 against Pillow's JPEG, WebP (method 6) and
# AVIF, and against CompressAI's published curves. Writes docs/results/rd_kodak.{md,csv,json,png}.
# EFFORT=E (1, 2, 3) encodes with `aecli compress --effort E` instead and writes docs/results/rd_kodak_effortE.*.
# MODEL=hpc measures another bundled codec model than `hp` and writes docs/results/rd_kodak_hpc.* (rd_kodak_hpc_effortE.*).
# MODEL=fit EFFORT=E measures the fitted codec (docs/fitted.md) at effort E: one fit per image and quality,
# hours on a CPU; pass --resume to go on after a stop. Writes docs/results/rd_kodak_fit_effortE.*.
# Needs matplotlib for the plot: pip install ".[bench]"
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/Kodak24}
EFFORT=${EFFORT:-0}
MODEL=${MODEL:-hp}
NAME=rd_kodak
if [ "$MODEL" != hp ]; then NAME=${NAME}_$MODEL; fi
if [ "$EFFORT" != 0 ]; then NAME=${NAME}_effort$EFFORT; fi
aecli eval "$DATA" --out docs/results --name "$NAME" --model "$MODEL" --effort "$EFFORT" \
  --published ../shared/reference/kodak_rd_published.json "$@"

#!/usr/bin/env bash
# Rate-distortion of the bundled codec on Kodak24 against Pillow's JPEG, WebP (method 6) and
# AVIF, and against CompressAI's published curves. Writes docs/rd_kodak.{md,csv,json,png}.
# EFFORT=E (1, 2, 3) encodes with `aecli compress --effort E` instead and writes docs/rd_kodak_effortE.*.
# Needs matplotlib for the plot: pip install ".[bench]"
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/Kodak24}
EFFORT=${EFFORT:-0}
NAME=rd_kodak
if [ "$EFFORT" != 0 ]; then NAME=rd_kodak_effort$EFFORT; fi
aecli eval "$DATA" --out docs --name "$NAME" --effort "$EFFORT" --published ../shared/reference/kodak_rd_published.json "$@"

#!/usr/bin/env bash
# Rate-distortion of the bundled codec on Kodak24 against Pillow's JPEG, WebP (method 6) and
# AVIF, and against CompressAI's published curves. Writes docs/rd_kodak.{md,csv,json,png}.
# Needs matplotlib for the plot: pip install ".[bench]"
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/Kodak24}
aecli eval "$DATA" --out docs --name rd_kodak --published ../shared/reference/kodak_rd_published.json "$@"

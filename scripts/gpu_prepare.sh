#!/usr/bin/env bash
# Before a call on a lent GPU machine (the library's `device` tool), here: put what the call needs
# into .gpu/ (git-ignored, sent with carry [".gpu"]) and keep the working tree under the 64 MiB limit.
#
#   bash scripts/gpu_prepare.sh          # needs a committed tree
#   device run: bash scripts/gpu_session.sh   (carry [".gpu"], timeout 600)
#   bash scripts/gpu_prepare.sh --restore     # afterwards: the big files tracked again
#
# .gpu/ holds: CBSD432 (the training images), the codec checkpoint without Adam's moments (hp.pt, from
# $HP_CKPT, by default checkpoints/hp/checkpoint.pt), the widened codec's checkpoint if there is one
# (hp-wide.pt, from checkpoints/hp-wide/), and the
# entropy coder's wheel for Python 3.12 (the GPU machine has no package index), so that the
# cross-device record can be written there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=(checkpoints/hp/checkpoint.pt checkpoints/dn/checkpoint.pt weights/hp.safetensors weights/dn.safetensors)
EXCLUDE=.git/info/exclude
if [ "${1:-}" = --restore ]; then
  git reset -q -- "${BIG[@]}"
  sed -i '\#^/checkpoints/$#d; \#^/weights/\*\.safetensors$#d' "$EXCLUDE"
  git status --short
  exit 0
fi
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "commit first: the big files are untracked for the call" >&2; exit 1; }
DATA=${DATA:-../shared/data/CBSD432}
rm -rf .gpu && mkdir -p .gpu/whl
cp -r "$DATA" .gpu/CBSD432
python scripts/slim_checkpoint.py "${HP_CKPT:-checkpoints/hp/checkpoint.pt}" .gpu/hp.pt
if [ -f checkpoints/hp-wide/checkpoint.pt ]; then
  python scripts/slim_checkpoint.py checkpoints/hp-wide/checkpoint.pt .gpu/hp-wide.pt
fi
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl constriction || echo "no constriction wheel: the cross-device record will be skipped" >&2
grep -qx '/.gpu/' "$EXCLUDE" || echo '/.gpu/' >> "$EXCLUDE"
git rm --cached -q -- "${BIG[@]}"
printf '/checkpoints/\n/weights/*.safetensors\n' >> "$EXCLUDE"
du -sh .gpu
echo "ready: the tracked files now travel without checkpoints and weights; run gpu_prepare.sh --restore afterwards"

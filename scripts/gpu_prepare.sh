#!/usr/bin/env bash
# Before a call on a lent GPU machine (the library's `device` tool), here: put what the call needs
# into .gpu/ (git-ignored, sent with carry [".gpu"]) and keep what travels under the 64 MiB limit.
#
#   bash scripts/gpu_prepare.sh               # needs a committed tree
#   device run: bash scripts/gpu_session.sh   (carry [".gpu"], timeout 590)
#   bash scripts/gpu_prepare.sh --restore     # afterwards: the big files tracked again
#
# .gpu/ holds CBSD432 (the training images), the widened codec's checkpoint without Adam's
# moments (hp-wide.pt, from $WIDE_CKPT, by default checkpoints/hp-wide/checkpoint.pt) and the
# real-noise denoiser's (dn-real.pt, from $DN_CKPT, by default checkpoints/dn-real/checkpoint.pt:
# the session continues the bundled dn-real rather than starting again from dn). Every
# tracked checkpoint and every bundled .safetensors but the ones the session starts from
# ($KEEP: weights/dn.safetensors, the real-noise denoiser's initialisation) is untracked for the
# call. The script fails if what would travel is over $LIMIT bytes (62 MiB: the tool's 64 MiB less
# a margin).
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=.git/info/exclude
KEEP=${KEEP:-weights/dn.safetensors}
LIMIT=${LIMIT:-65011712}
BEGIN='# gpu_prepare.sh: untracked for the call' END='# gpu_prepare.sh: end'
if [ "${1:-}" = --restore ]; then
  [ -f .gpu/untracked.txt ] && xargs -r -a .gpu/untracked.txt git reset -q --
  sed -i "/^$BEGIN\$/,/^$END\$/d" "$EXCLUDE"
  git status --short
  exit 0
fi
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "commit first: the big files are untracked for the call" >&2; exit 1; }
DATA=${DATA:-../shared/data/CBSD432}
WIDE_CKPT=${WIDE_CKPT:-checkpoints/hp-wide/checkpoint.pt}
DN_CKPT=${DN_CKPT:-checkpoints/dn-real/checkpoint.pt}
rm -rf .gpu && mkdir -p .gpu
cp -r "$DATA" .gpu/CBSD432
chmod -R u+w .gpu/CBSD432
if [ -f "$WIDE_CKPT" ]; then
  python -m scripts.slim_checkpoint "$WIDE_CKPT" .gpu/hp-wide.pt
fi
if [ -f "$DN_CKPT" ]; then
  python -m scripts.slim_checkpoint "$DN_CKPT" .gpu/dn-real.pt
fi
grep -qx '/.gpu/' "$EXCLUDE" || echo '/.gpu/' >> "$EXCLUDE"
git ls-files -- 'checkpoints/*' 'weights/*.safetensors' | grep -vxF -f <(tr ' ' '\n' <<<"$KEEP") > .gpu/untracked.txt || true
xargs -r -a .gpu/untracked.txt git rm --cached -q --
{ echo "$BEGIN"; sed 's#^#/#' .gpu/untracked.txt; echo "$END"; } >> "$EXCLUDE"  # --restore removes this block
bytes=$(( $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) \
        + $(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1 || echo 0) \
        + $(du -sb .gpu | cut -f1) ))
echo "travels: $bytes bytes (limit $LIMIT)"
if [ "$bytes" -gt "$LIMIT" ]; then
  echo "too much would travel: run gpu_prepare.sh --restore and send less" >&2
  exit 1
fi
echo "ready: the tracked files now travel without the big checkpoints and weights; run gpu_prepare.sh --restore afterwards"

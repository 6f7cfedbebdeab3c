"""Keep a model's current weights for decoding before they are replaced.

    python -m scripts.retire_weights hp            # weights/hp.* -> weights/hp-<fingerprint>.*
    cp runs/.../hp.safetensors runs/.../hp.json weights/   # then install the new weights

The copy keeps the weights' bytes (so their fingerprint) and the model's name, and its JSON says
``"decode_only": true``: `.lat` files written with these weights still decode, while `aecli
compress --model hp` uses the new ones (aecli/registry.py). Each kept version adds its
.safetensors size to the package (the bundled codec: about 15 MB).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from aecli.registry import fingerprint_of
from tools.paths import ROOT


def retire(name: str, folder: Path) -> Path:
    weights, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    meta = json.loads(meta_path.read_text())
    fp = fingerprint_of(weights)
    if meta.get("fingerprint") != fp:
        raise SystemExit(f"{weights}: fingerprint {fp} does not match its metadata ({meta.get('fingerprint')})")
    dest = folder / f"{name}-{fp}.safetensors"
    if dest.exists():
        raise SystemExit(f"{dest} exists already")
    shutil.copyfile(weights, dest)
    meta = dict(meta, decode_only=True)
    dest.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="model name, such as hp")
    ap.add_argument("--dir", default=str(ROOT / "weights"), help="folder of the weights (default: weights/)")
    args = ap.parse_args()
    dest = retire(args.name, Path(args.dir))
    print(f"kept {dest} (decode only); now install the new {args.name}.safetensors and {args.name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

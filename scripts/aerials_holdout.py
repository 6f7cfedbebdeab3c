"""The bundled codec's validation figures on the images a fine-tuning run held out, measured as the
run measured its own (CodecTask.validate: code length of the rounded latents, PSNR of the 8-bit
reconstruction, every quality), for docs/aerials.md:

    python -m scripts.aerials_holdout [MODEL] [DATA] [HOLDOUT] > docs/results/aerials_hpc_val_holdout.json

DATA defaults to ../shared/data/Aerials/train (beside the checkout, tools/paths.py), HOLDOUT to 2.
"""

import json
import sys
import time

import torch

from aecli import registry
from aecli.codec import model as codec_model
from aecli.train.data import CropDataset
from aecli.train.init import load_into
from aecli.codec.train import CodecTask


def main(argv: list[str]) -> None:
    name = argv[0] if len(argv) > 0 else "hpc"
    data_dir = argv[1] if len(argv) > 1 else "../shared/data/Aerials/train"
    holdout = int(argv[2]) if len(argv) > 2 else 2
    t0 = time.time()
    m = registry.resolve(name, "codec")
    net = codec_model.build(m.meta["architecture"])
    load_into(net, registry.load_tensors(m))
    data = CropDataset(data_dir, 256, holdout=holdout)
    rows = CodecTask().validate(net, data, torch.device("cpu"))
    print(json.dumps({"model": name, "fingerprint": m.meta["fingerprint"], "images": [f.name for f in data.val_files],
                      "estimated_rd": rows, "seconds": round(time.time() - t0, 1)}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

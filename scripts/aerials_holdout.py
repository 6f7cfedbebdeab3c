"""The bundled codec's validation figures on the images a fine-tuning run held out, measured as the
run measured its own (CodecTask.validate: code length of the rounded latents, PSNR of the 8-bit
reconstruction, every quality), for docs/aerials.md:

    python scripts/aerials_holdout.py [MODEL] [DATA] [HOLDOUT] > docs/aerials_hpc_val_holdout.json
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

name = sys.argv[1] if len(sys.argv) > 1 else "hpc"
data_dir = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/Aerials/train"
holdout = int(sys.argv[3]) if len(sys.argv) > 3 else 2
t0 = time.time()
m = registry.resolve(name, "codec")
net = codec_model.build(m.meta["architecture"])
load_into(net, registry.load_tensors(m))
data = CropDataset(data_dir, 256, holdout=holdout)
rows = CodecTask().validate(net, data, torch.device("cpu"))
print(json.dumps({"model": name, "fingerprint": m.meta["fingerprint"], "images": [f.name for f in data.val_files],
                  "estimated_rd": rows, "seconds": round(time.time() - t0, 1)}, indent=1))

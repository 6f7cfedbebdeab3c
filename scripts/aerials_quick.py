"""A lighter rate-distortion sweep for a busy machine: real .lat files of one image at some qualities,
coded at the image's own size only (`--scale 1`), with one model; appends one JSON line per image
to OUT (bpp of the whole file, PSNR of the decoded image). Both models measured the same way give a
fair comparison of the models; `aecli eval` (both coding scales, every quality) is the full protocol.

    python scripts/aerials_quick.py MODEL OUT.jsonl IMAGE... [--qualities 2,4,6,8,10]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from aecli import format as latformat
from aecli.codec import levels
from aecli.codec.api import load_codec
from aecli.eval.metrics import psnr
from aecli.imageio import read_image


def main(argv: list[str]) -> None:
    qualities = [2, 4, 6, 8, 10]
    if "--qualities" in argv:
        i = argv.index("--qualities")
        qualities = [int(v) for v in argv[i + 1].split(",")]
        argv = argv[:i] + argv[i + 2:]
    model, out, images = argv[0], Path(argv[1]), argv[2:]
    codec = load_codec(model)
    for path in images:
        img = read_image(path)
        h, w = img.pixels.shape[:2]
        t0 = time.perf_counter()
        analyses = {levels.UNIT: codec.analyse(codec.coded_image(img, levels.UNIT))}
        points = {}
        for q in qualities:
            data = codec.compress(img, q, analyses, 0, scale=levels.UNIT)
            back = codec.decompress(latformat.unpack(data))
            points[q] = {"bpp": 8 * len(data) / (w * h), "psnr": psnr(img.rgb, back.rgb)}
        with open(out, "a") as f:
            f.write(json.dumps({"model": codec.name, "fingerprint": codec.files.meta.get("fingerprint"), "image": Path(path).name,
                                "scale": "1 (own size)", "points": points, "seconds": round(time.perf_counter() - t0, 1)}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

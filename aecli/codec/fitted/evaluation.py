"""The fitted codec as `aecli eval` sees a codec: a name, qualities and one image measured at each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ... import format as latformat
from ...images.image import Image
from . import codec

EVAL_QUALITIES = (3, 4, 5, 6)  # lambdas 0.002 .. 0.00025: about 0.2 to 1.2 bpp on photographs


@dataclass
class _Files:
    meta: dict = field(default_factory=lambda: {"fingerprint": codec.FINGERPRINT.hex(),
                                                "training": {"note": "fitted to each image at encode time",
                                                             "hardware": "none (no training)"}})


class EvalCodec:
    """What codec_eval needs of a codec, for the fitted kind at one effort."""

    name = codec.NAME
    qualities = list(EVAL_QUALITIES)

    def __init__(self):
        self.files = _Files()

    def measure(self, img: Image, effort: int, step, metrics) -> dict:
        """{quality: bpp, psnr, ms_ssim, encode_s, decode_s, iterations}; `metrics` = (psnr, ms_ssim)."""
        psnr, ms_ssim = metrics
        h, w = img.pixels.shape[:2]
        points = {}
        for q in self.qualities:
            t0 = time.perf_counter()
            res = codec.compress(img, q, effort or codec.DEFAULT_EFFORT)
            t1 = time.perf_counter()
            back = codec.decompress(latformat.unpack(res.data))
            t2 = time.perf_counter()
            points[q] = {"bpp": 8 * len(res.data) / (w * h), "psnr": psnr(img.rgb, back.rgb),
                         "ms_ssim": ms_ssim(img.rgb, back.rgb), "encode_s": t1 - t0, "decode_s": t2 - t1,
                         "iterations": res.iterations}
            step()
        return points

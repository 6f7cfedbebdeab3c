"""CPU speed of compress, decompress and denoise with the two memory layouts of the transforms.

    python -m benchmarks.perf_layout --out docs/results --name perf

The profile (py-spy, see docs/perf.md) showed the codec's time going to the synthesis and
analysis convolutions, GDN and the integer hyper-synthesis, and the denoiser's to its
convolutions. This times, in one process on the same inputs, the layout aecli used before
(contiguous NCHW) against channels-last (which oneDNN often convolves faster), for each transform:
compress and decompress of samples/kodim23.png (768x512, quality 5) and denoise of its
481x321 crop (sigma 25 given); the layouts take --rounds turns, each timing the median of
--repeat runs after a warm-up, and the best turn counts. It also checks that the
.lat bytes are the same in both layouts (they must be: the entropy path is exact) and reports
how many decoded or denoised values differ (float rounding of another summation order).

Writes OUT/NAME.json and OUT/NAME.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import RESULTS, ROOT, machine, median_time, write_report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "samples" / "kodim23.png")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="turns of each layout; the best median is kept")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="perf")
    args = ap.parse_args()
    import numpy as np
    import torch

    from aecli import format as latformat
    from aecli.codec import api as codec_api
    from aecli.codec import transforms as codec_layouts
    from aecli.denoise import api as dn_api
    from aecli.images.decode import read_image

    if args.threads:
        torch.set_num_threads(args.threads)
    img = read_image(args.image)
    crop = np.ascontiguousarray(img.pixels[:321, :481])
    codec = codec_api.load_codec(None)
    den = dn_api.load_denoiser(None)
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    chosen = (codec_layouts.ANALYSIS_LAYOUT, codec_layouts.SYNTHESIS_LAYOUT, dn_api.LAYOUT)
    outputs = {}
    best: dict[str, dict[str, float]] = {label: {} for label in layouts}
    for _ in range(args.rounds):  # the layouts take turns, so that a slow spell of the machine hits both
        for label, fmt in layouts.items():
            codec_layouts.ANALYSIS_LAYOUT = codec_layouts.SYNTHESIS_LAYOUT = dn_api.LAYOUT = fmt
            for m in (codec.model.g_a, codec.model.g_s, den.model):
                m.to(memory_format=fmt)
            data = codec.compress(img, 5, scale=8)  # one coding at the image's own size
            lat = latformat.unpack(data)
            back = codec.decompress(lat)
            clean, _ = den.denoise_array(crop, 25.0)
            outputs[label] = (data, back.pixels, clean)
            times = {"compress_s": median_time(lambda: codec.compress(img, 5, scale=8), args.repeat),
                     "decompress_s": median_time(lambda: codec.decompress(lat), args.repeat),
                     "denoise_s": median_time(lambda: den.denoise_array(crop, 25.0), args.repeat)}
            for k, v in times.items():
                best[label][k] = min(v, best[label].get(k, v))
    rows = [{"layout": label, **best[label]} for label in layouts]
    codec_layouts.ANALYSIS_LAYOUT, codec_layouts.SYNTHESIS_LAYOUT, dn_api.LAYOUT = chosen
    names = {torch.contiguous_format: "contiguous", torch.channels_last: "channels-last"}
    (d0, b0, c0), (d1, b1, c1) = outputs.values()
    same = {"lat_bytes_identical": d0 == d1, "decoded_values_differing": int((b0 != b1).sum()),
            "decoded_max_diff": int(np.abs(b0.astype(int) - b1.astype(int)).max()),
            "denoised_values_differing": int((c0 != c1).sum()), "values": int(b0.size)}
    before, now = rows
    L = ["# CPU speed: memory layout of the transforms", "",
         f"Command: `python -m benchmarks.perf_layout`. Machine: {machine()}, "
         f"torch {torch.__version__}, {torch.get_num_threads()} threads; the best of {args.rounds} turns, each the median "
         f"of {args.repeat} runs.", "",
         "| layout | compress 768x512 s | decompress 768x512 s | denoise 481x321 s |", "|---|---:|---:|---:|"]
    for r in rows:
        L.append(f"| {r['layout']} | {r['compress_s']:.3f} | {r['decompress_s']:.3f} | {r['denoise_s']:.3f} |")
    L.append(f"| channels-last speed-up | {before['compress_s'] / now['compress_s']:.2f}x | "
             f"{before['decompress_s'] / now['decompress_s']:.2f}x | {before['denoise_s'] / now['denoise_s']:.2f}x |")
    L.append(f"| aecli uses | {names[chosen[0]]} | {names[chosen[1]]} | {names[chosen[2]]} |")
    L += ["", f".lat bytes identical in both layouts: {same['lat_bytes_identical']}; decoded values that differ: "
          f"{same['decoded_values_differing']} of {same['values']} (at most {same['decoded_max_diff']}); denoised values "
          f"that differ: {same['denoised_values_differing']}."]
    write_report(args.out, args.name, {"machine": machine(), "threads": torch.get_num_threads(), "rows": rows,
                                       "outputs": same}, L)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The two decoders of the bundled codecs on damaged files: the numpy one (aecli/codec/numpy_decoder.py)
and the torch one (aecli/codec/api.py) must refuse the same files with the same words, and decode
the others to the same latents, symbol for symbol.

Seeds: files of the bundled `hpc` (checkerboard) and `hp` (hyperprior) at two qualities; each case
damages one stream of one seed (bit flips, a cut, inserted bytes, a replaced byte) and keeps the
header valid, so that every case reaches the latent decoders.

    python -m tools.fuzz.decoders --cases 3000 --seed 1 [--out docs/results/fuzz_decoders.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

import numpy as np

from aecli import format as latformat
from aecli.codec import api, coding, decoding, numpy_decoder
from aecli.images.image import Image


def _seeds(rng) -> list[bytes]:
    yy, xx = np.mgrid[0:72, 0:104]
    out = []
    for model in ("hpc", "hp"):
        for q in (2, 8):
            px = np.stack([(np.sin(xx / 7.0 + c) + np.cos(yy / 5.0 - c)) * 60 + 128 for c in range(3)], axis=2)
            px = np.clip(px + rng.normal(0, 8, px.shape), 0, 255).astype(np.uint8)
            out.append(api.load_codec(model).compress(Image(pixels=px, alpha=None, mode="RGB", source_bits=8), q))
    return out


def _damaged(seed: bytes, rng) -> latformat.LatFile:
    lat = latformat.unpack(seed)
    streams = list(lat.streams)
    i = int(rng.integers(0, len(streams)))
    data = bytearray(streams[i])
    how = int(rng.integers(0, 4))
    if how == 0 and data:
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
    elif how == 1 and data:
        del data[int(rng.integers(0, len(data))):]
    elif how == 2:
        at = int(rng.integers(0, len(data) + 1))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8).tobytes()
    elif data:
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    streams[i] = bytes(data)
    return replace(lat, streams=tuple(streams))


def _outcome(decode, lat: latformat.LatFile, kind: str, qualities: list[int]):
    """("ok", latents) or ("error", message) of one decoder."""
    try:
        p = decoding.plan(lat, lat.model, lat.fingerprint, qualities, kind, decoding.ALIGN[kind], 1 << 26)
        return "ok", decode(p)
    except coding.CodingError as exc:
        return "error", f"corrupt .lat file: {exc}"
    except decoding.UserError as exc:
        return "error", str(exc)


def run(cases: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    seeds = _seeds(rng)
    counts = {"same_error": 0, "same_latents": 0, "mismatch": 0}
    mismatches = []
    t0 = time.time()
    for case in range(cases):
        lat = _damaged(seeds[case % len(seeds)], rng)
        files = decoding.model_for(lat)
        kind = files.meta["architecture"]["kind"]
        npc, tc = numpy_decoder.load(files), api.codec_of(files)
        a = _outcome(lambda p: npc.decode_latents(p.streams, p.qi, p.ph // 16, p.pw // 16), lat, kind, npc.qualities)
        b = _outcome(lambda p: tc.decode_streams(list(p.streams), p.qi, p.ph // 16, p.pw // 16)[0].numpy(), lat, kind, npc.qualities)
        if a[0] == b[0] == "error" and a[1] == b[1]:
            counts["same_error"] += 1
        elif a[0] == b[0] == "ok" and np.array_equal(a[1], b[1]):
            counts["same_latents"] += 1
        else:
            counts["mismatch"] += 1
            mismatches.append({"case": case, "numpy": a[1] if a[0] == "error" else "ok",
                               "torch": b[1] if b[0] == "error" else "ok"})
    return {"cases": cases, "seed": seed, **counts, "mismatches": mismatches[:20], "seconds": round(time.time() - t0, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fuzz.decoders", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="also write the summary here (JSON)")
    args = ap.parse_args(argv)
    summary = run(args.cases, args.seed)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if summary["mismatch"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

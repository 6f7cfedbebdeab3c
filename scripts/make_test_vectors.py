"""Regenerate tests/vectors: a tiny random-weight codec model, a small .lat and the PNG it decodes to.

    python -m scripts.make_test_vectors

The model is untrained (seeded random weights): the vectors pin the format and the decoder's
arithmetic, not compression quality.  Only rerun this when the format or decoder changes on purpose.
`small.exact.png` is the fixed-point decode (`decompress --exact`), the same on every machine; it was
added later, from the committed model and .lat (`--exact-only` writes just that file).
`small-scaled.*` is the same source at quality 3 coded at scale 11/8 (a version 2 file, docs/format.md) with its
two decodes; it was added later still, from the committed model and source (`--scaled-only`).
`small-meta.lat` is `small.lat` with a metadata table (an ICC profile, EXIF and XMP: docs/format.md,
"Metadata"); its streams, and so its pixels, are those of `small.lat` (`--meta-only`, no torch needed).
`fitted4.*` is a fitted file (version 3, docs/format.md; structure version 4) of the same source,
fitted for 40 iterations (seed 0, one thread) at quality 6, with its decode and its latents
(`fitted4.latents.npz`, finest plane first); made from the committed source (`--fitted-only`).
`fitted3.*`, `fitted2.*` and `fitted.*` are the same made by earlier writers (structure version 3:
the synthesis reading one value of the finest plane per pixel; version 2: also means coded in
quarters; version 1: also planes interpolated straight to the image size); they are kept, not
rewritten, so that files of every structure version stay decodable.
"""

from pathlib import Path

import numpy as np
import torch

from aecli import registry
from aecli.codec import model as codec_model
from aecli.codec.api import Codec
from aecli.images.encode import encode_image
from aecli.images.image import Image

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors"


def tiny_model(kind: str, name: str, out: Path) -> registry.ModelFiles:
    torch.manual_seed(1234)
    m = codec_model.build({"kind": kind, "n": 8, "m": 12, "lambdas": codec_model.COMPRESSAI_LAMBDAS[:3]})
    with torch.no_grad():  # large gains: an untrained model then still codes many symbols
        m.gain.copy_(torch.linspace(1.0, 4.0, 3).unsqueeze(1).expand_as(m.gain))
        m.inv_gain.copy_(-m.gain)
    meta = {"name": name, "task": "codec", "architecture": m.config(), "qualities": [1, 2, 3], "default_quality": 2,
            "training": {"steps": 0, "note": "untrained test model"}}
    return registry.save(codec_model.export_tensors(m), meta, out / f"{name}.safetensors")


def write_exact(codec: Codec, data: bytes) -> None:
    from aecli import format as latformat

    back = codec.decompress(latformat.unpack(data), exact=True)
    (OUT / "small.exact.png").write_bytes(encode_image(back, "png"))


def write_scaled(codec: Codec) -> None:
    """small-scaled.lat: the committed source at quality 3, coded at scale 11/8; its decodes."""
    from aecli import format as latformat
    from aecli.codec import levels
    from aecli.images.decode import decode_image

    src = decode_image((OUT / "small.source.png").read_bytes())
    data = codec.compress(src, 3, scale=levels.SCALED)
    (OUT / "small-scaled.lat").write_bytes(data)
    for name, exact in (("small-scaled.decoded.png", False), ("small-scaled.exact.png", True)):
        (OUT / name).write_bytes(encode_image(codec.decompress(latformat.unpack(data), exact=exact), "png"))
    print(f"wrote {OUT}: small-scaled.lat {len(data)} bytes")


def vector_metadata() -> tuple:
    """The metadata of small-meta.lat: a 132-byte RGB display profile header without tags, an EXIF
    block naming a camera, and an XMP packet; fixed bytes, so the vector is reproducible."""
    from PIL import Image as PILImage

    icc = bytearray(132)
    icc[0:4] = (132).to_bytes(4, "big")
    icc[8:12] = bytes([2, 0x10, 0, 0])
    icc[12:24] = b"mntrRGB XYZ "
    icc[36:40] = b"acsp"
    exif = PILImage.Exif()
    exif[0x010F], exif[0x0110] = "aecli", "test vector"
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/png"/></rdf:RDF></x:xmpmeta>')
    return (("icc", bytes(icc)), ("exif", exif.tobytes()), ("xmp", xmp))


def write_meta() -> None:
    import dataclasses

    from aecli import format as latformat

    lat = latformat.unpack((OUT / "small.lat").read_bytes())
    data = latformat.pack(dataclasses.replace(lat, metadata=vector_metadata()))
    (OUT / "small-meta.lat").write_bytes(data)
    print(f"wrote {OUT}: small-meta.lat {len(data)} bytes")


def write_fitted() -> None:
    """fitted<N>.lat (N: the structure version writers write): the committed source fitted at
    quality 6; its decode and latents."""
    from aecli.codec.fitted.header import VERSION
    from aecli import format as latformat
    from aecli.codec.fitted import codec as fitted
    from aecli.images.decode import decode_image

    torch.set_num_threads(1)
    src = decode_image((OUT / "small.source.png").read_bytes())
    res = fitted.compress(src, 6, iterations=40, seed=0, version=VERSION)
    name = f"fitted{VERSION}"
    (OUT / f"{name}.lat").write_bytes(res.data)
    lat = latformat.unpack(res.data)
    (OUT / f"{name}.decoded.png").write_bytes(encode_image(fitted.decompress(lat), "png"))
    planes = fitted.decode_latents(lat)
    np.savez_compressed(OUT / f"{name}.latents.npz", *[p.astype(np.int32) for p in planes])
    print(f"wrote {OUT}: {name}.lat {len(res.data)} bytes, {res.psnr:.2f} dB")


def main() -> None:
    import sys

    if "--meta-only" in sys.argv:
        write_meta()
        return

    if "--fitted-only" in sys.argv:
        write_fitted()
        return
    if "--scaled-only" in sys.argv:
        write_scaled(Codec.load(registry.resolve(str(OUT / "vector-hp.safetensors"), "codec")))
        return
    if "--exact-only" in sys.argv:
        write_exact(Codec.load(registry.resolve(str(OUT / "vector-hp.safetensors"), "codec")), (OUT / "small.lat").read_bytes())
        return
    OUT.mkdir(parents=True, exist_ok=True)
    files = tiny_model("hyperprior", "vector-hp", OUT)
    codec = Codec.load(files)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:40, 0:56]
    px = np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], axis=2).astype(np.uint8)
    px = np.clip(px.astype(int) + rng.integers(-20, 20, px.shape), 0, 255).astype(np.uint8)
    img = Image(px, None, "RGB", 8)
    data = codec.compress(img, 2, scale=8)
    (OUT / "small.lat").write_bytes(data)
    (OUT / "small.source.png").write_bytes(encode_image(img, "png"))
    from aecli import format as latformat

    back = codec.decompress(latformat.unpack(data))
    (OUT / "small.decoded.png").write_bytes(encode_image(back, "png"))
    write_exact(codec, data)
    print(f"wrote {OUT}: small.lat {len(data)} bytes")
    write_scaled(codec)
    write_meta()
    write_fitted()


if __name__ == "__main__":
    main()

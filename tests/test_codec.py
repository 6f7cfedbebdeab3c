"""The codec on tiny untrained models: round trips, exactness, determinism, tiling, errors."""

import numpy as np
import pytest
import torch

from aecli import format as latformat
from aecli import registry
from aecli import tiling
from aecli.codec import api, checkerboard, coding, hyperprior, intnet
from aecli.codec.checkerboard import CheckerboardLatents
from aecli.codec.hyperprior import HyperpriorLatents
from aecli.codec.model import Z_LIMIT, anchors
from aecli.codec.transforms import to_tensor
from aecli.errors import UserError
from aecli.images.decode import decode_image
from aecli.images.image import Image

from conftest import VECTORS, photo_like


@pytest.fixture(params=["tiny-hp", "tiny-cb", "tiny-fp"])
def codec(request):
    return api.load_codec(request.param)


def _img(px, alpha=None, mode=None):
    mode = mode or ("L" if px.ndim == 2 else "RGB")
    return Image(px, alpha, mode, 8)


@pytest.mark.parametrize("h,w", [(1, 1), (5, 3), (64, 64), (67, 131)])
def test_round_trip_shapes_and_determinism(codec, rng, h, w):
    img = _img(photo_like(h, w, rng))
    data = codec.compress(img, 3)
    assert codec.compress(img, 3) == data  # same input, same bytes
    lat = latformat.unpack(data)
    assert (lat.width, lat.height, lat.mode, lat.quality, lat.model) == (w, h, "RGB", 3, codec.name)
    back = codec.decompress(lat)
    assert back.pixels.shape == (h, w, 3) and back.pixels.dtype == np.uint8


def test_decoder_reproduces_encoder_reconstruction(codec, rng):
    """The decoder recovers exactly the latent the encoder quantised."""
    img = _img(photo_like(96, 80, rng))
    qi = 2
    y_base = codec.analyse(img)
    streams = codec.encode_latents(*codec.latents(y_base, qi), qi)
    with torch.inference_mode():
        y = y_base * torch.exp(codec.model.gain[qi]).view(1, -1, 1, 1)
        if isinstance(codec.latent_coding, CheckerboardLatents):  # anchors from the hyperprior pass, then the rest
            hg = torch.exp(codec.model.hgain[qi]).view(1, -1, 1, 1)
            z = torch.round(codec.model.h_a(y) * hg).clamp(-Z_LIMIT, Z_LIMIT)
            hyper = codec.latent_coding.hyper_ints(z.to(torch.int64), qi)
            first = anchors(*y.shape[-2:])
            _, m_a = codec.latent_coding.params(hyper, None, first[0, 0].bool().numpy())
            anchor = torch.round(y - m_a) + m_a
            y_anchor = torch.floor(anchor.double() * 4096 + 0.5) * first
            _, m_b = codec.latent_coding.params(hyper, y_anchor, ~first[0, 0].bool().numpy())
            expected = anchor * first + (torch.round(y - m_b) + m_b) * (1 - first)
        elif isinstance(codec.latent_coding, HyperpriorLatents):
            hg = torch.exp(codec.model.hgain[qi]).view(1, -1, 1, 1)
            z = torch.round(codec.model.h_a(y) * hg).clamp(-Z_LIMIT, Z_LIMIT)
            _, means = codec.latent_coding.hyper_params(z.to(torch.int64), qi)
            expected = torch.round(y - means) + means
        else:
            expected = torch.round(y)
    got = codec.decode_streams(streams, qi, y.shape[2], y.shape[3])
    assert torch.equal(got, expected)


def test_quality_changes_latent_precision(codec, rng):
    img = _img(photo_like(64, 64, rng))
    y = codec.analyse(img)
    lh, lw = y.shape[2:]
    spread = []
    for qi in (0, 2):
        y_hat = codec.decode_streams(codec.encode_latents(*codec.latents(y, qi), qi), qi, lh, lw)
        spread.append(float(y_hat.abs().sum()))
    assert spread[0] < spread[1]  # higher quality: larger gain, more non-zero symbols


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_modes_and_lossless_alpha(rng, mode):
    codec = api.load_codec("tiny-hp")
    gray = mode in ("L", "LA")
    px = photo_like(33, 47, rng, 1 if gray else 3)
    alpha = rng.integers(0, 256, (33, 47), dtype=np.uint8) if "A" in mode else None
    back = codec.decompress(latformat.unpack(codec.compress(_img(px, alpha, mode), 2)))
    assert back.mode == mode
    assert back.pixels.shape == px.shape
    if alpha is not None:
        assert np.array_equal(back.alpha, alpha)


def test_committed_vector_decodes_bit_exactly():
    lat = latformat.unpack((VECTORS / "small.lat").read_bytes())
    codec = api.codec_for(lat)
    back = codec.decompress(lat)
    expected = decode_image((VECTORS / "small.decoded.png").read_bytes())
    assert np.array_equal(back.pixels, expected.pixels)
    exact = decode_image((VECTORS / "small.exact.png").read_bytes())  # fixed point: the same on every machine
    assert np.array_equal(codec.decompress(lat, exact=True).pixels, exact.pixels)
    # and the encoder still writes the same bytes from the source image
    src = decode_image((VECTORS / "small.source.png").read_bytes())
    assert codec.compress(src, lat.quality, scale=lat.scale) == (VECTORS / "small.lat").read_bytes()


def test_committed_scaled_vector_decodes_bit_exactly():
    """A version 2 file: the source coded at 11/8 of its size, decoded and scaled back down."""
    data = (VECTORS / "small-scaled.lat").read_bytes()
    lat = latformat.unpack(data)
    assert data[3] == 2 and lat.scale == 11 and (lat.width, lat.height) == (56, 40)
    codec = api.codec_for(lat)
    for name, exact in (("small-scaled.decoded.png", False), ("small-scaled.exact.png", True)):
        assert np.array_equal(codec.decompress(lat, exact=exact).pixels, decode_image((VECTORS / name).read_bytes()).pixels)
    src = decode_image((VECTORS / "small.source.png").read_bytes())
    assert codec.compress(src, lat.quality, scale=lat.scale) == data


@pytest.mark.parametrize("name", ["tiny-hp", "tiny-cb"])
def test_decoding_is_independent_of_thread_count(rng, name):
    codec = api.load_codec(name)
    lat = latformat.unpack(codec.compress(_img(photo_like(150, 170, rng)), 3))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.decompress(lat).pixels
        torch.set_num_threads(2)
        two = codec.decompress(lat).pixels
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(one, two)


def test_integer_hyper_synthesis_is_exact(rng):
    """The float64 evaluation equals an int64 reference, whatever the memory layout."""
    codec = api.load_codec("tiny-hp")
    z = torch.from_numpy(rng.integers(-40, 40, (1, 8, 5, 6))).to(torch.float64)
    a = z * codec.latent_coding.inv_hgain[1].view(1, -1, 1, 1)
    fast = intnet.run(codec.latent_coding.h_s, a)
    cl = intnet.run(codec.latent_coding.h_s, a.to(memory_format=torch.channels_last))
    assert torch.equal(fast, cl)
    # reference: exact integer arithmetic with python ints via int64 tensors (no float at all)
    ref = a.to(torch.int64)
    for layer in codec.latent_coding.h_s:
        w = layer.weight.to(torch.int64)
        if layer.kind == "deconv":
            acc = torch.nn.functional.conv_transpose2d(ref.double(), w.double(), None, layer.stride, layer.padding, layer.output_padding)
        else:
            acc = torch.nn.functional.conv2d(ref.double(), w.double(), None, layer.stride, layer.padding)
        acc = acc.to(torch.int64) + layer.bias.view(1, -1, 1, 1)
        out = torch.div(acc + (1 << (layer.shift - 1)), 1 << layer.shift, rounding_mode="floor")
        if layer.relu:
            out = out.clamp_min(0)
        ref = out.clamp(-intnet.ACT_LIMIT, intnet.ACT_LIMIT)
    assert torch.equal(fast.to(torch.int64), ref)
    assert fast.abs().max() < 2**53


def test_integer_layers_in_pieces_give_the_same_integers(monkeypatch, rng):
    """Above COLUMN_BYTES a convolution sums over slices of its input channels and a transposed one
    computes slices of its output channels: the same integers as in one call (hyper-synthesis and
    the fixed-point synthesis)."""
    codec = api.load_codec("tiny-hp")
    z = torch.from_numpy(rng.integers(-40, 40, (1, 8, 5, 6))).to(torch.float64)
    a = z * codec.latent_coding.inv_hgain[1].view(1, -1, 1, 1)
    y = torch.randint(-(1 << 22) + 1, 1 << 22, (1, codec.model.m, 5, 6)).double()
    synthesis = intnet.synthesis(codec.model.g_s)
    whole = intnet.run(codec.latent_coding.h_s, a), intnet.run(synthesis, y)
    calls = []
    real = torch.nn.functional.conv2d
    monkeypatch.setattr(intnet.F, "conv2d", lambda *args: calls.append(args[1].shape[1]) or real(*args))
    monkeypatch.setattr(intnet, "COLUMN_BYTES", 4096)
    pieces = intnet.run(codec.latent_coding.h_s, a), intnet.run(synthesis, y)
    assert len(calls) > 1 and min(calls) < max(w._w.shape[1] for w in codec.latent_coding.h_s)  # really split
    assert torch.equal(whole[0], pieces[0]) and torch.equal(whole[1], pieces[1])
    assert intnet._pieces(10 * 4096, 7) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    assert intnet._pieces(3 * 4096, 8) == [(0, 3), (3, 6), (6, 8)]
    assert intnet._pieces(100, 8) == [(0, 8)]


@pytest.mark.parametrize("tile", [1, 2, 3])
def test_hyper_synthesis_tiles_with_its_halo_are_exact(monkeypatch, rng, tile):
    """A latent in hyper cell c depends on cells c - 1 .. c + 2 only, so tiles with a halo of
    HYPER_HALO (2) cells give the untiled integers, and a halo of 1 does not."""
    codec = api.load_codec("tiny-hp")
    z = torch.from_numpy(rng.integers(-30, 30, (1, codec.model.nh, 7, 9)))
    whole = codec.latent_coding.hyper_ints(z, 2)
    monkeypatch.setattr(hyperprior, "HYPER_TILE", tile)
    assert torch.equal(codec.latent_coding.hyper_ints(z, 2), whole)
    monkeypatch.setattr(hyperprior, "HYPER_HALO", 1)
    assert not torch.equal(codec.latent_coding.hyper_ints(z, 2), whole)


def test_tiled_equals_untiled(monkeypatch, rng):
    codec = api.load_codec("tiny-hp")
    img = _img(photo_like(200, 260, rng))
    whole = codec.decompress(latformat.unpack(codec.compress(img, 3))).pixels
    monkeypatch.setattr(tiling, "TILE", 3)  # force many tiles (latent tiles of 48 pixels)
    y_whole = tiling.tiled(lambda t: codec.model.g_a(t.float() / 255), to_tensor(img, codec.model.align)[0], 16, up=False, tile=10**6)
    y_tiled = tiling.tiled(lambda t: codec.model.g_a(t.float() / 255), to_tensor(img, codec.model.align)[0], 16, up=False, tile=3)
    assert torch.allclose(y_whole, y_tiled, atol=1e-4)
    y_tiled = tiling.tiled(lambda t: codec.model.g_a(t.float() / 255), to_tensor(img, codec.model.align)[0], 16, up=False, tile=3,
                           halo=tiling.ANALYSIS_HALO)  # the analysis's own, smaller halo
    assert torch.allclose(y_whole, y_tiled, atol=1e-4)
    tiled = codec.decompress(latformat.unpack(codec.compress(img, 3))).pixels
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_compress_to_fit(rng):
    codec = api.load_codec("tiny-hp")
    img = _img(photo_like(64, 64, rng))
    sizes = {q: len(codec.compress(img, q)) for q in codec.qualities}
    budget = sizes[2]
    data, q, fits = codec.compress_to_fit(img, budget)
    assert fits and len(data) <= budget and q == max(k for k, v in sizes.items() if v <= budget)
    data, q, fits = codec.compress_to_fit(img, 10)
    assert not fits and q == 1


def test_wrong_or_missing_model(rng, tmp_path):
    codec = api.load_codec("tiny-hp")
    lat = latformat.unpack(codec.compress(_img(photo_like(20, 20, rng)), 2))
    other = latformat.LatFile(**{**lat.__dict__, "fingerprint": b"\0\0\0\0"})
    with pytest.raises(UserError, match="tiny-hp"):
        api.codec_for(other)
    missing = latformat.LatFile(**{**lat.__dict__, "model": "nosuchmodel"})
    with pytest.raises(UserError, match="nosuchmodel.*not installed"):
        api.codec_for(missing)
    with pytest.raises(UserError, match="needs model 'tiny-hp'"):
        api.codec_for(lat, "tiny-fp")
    with pytest.raises(UserError, match="quality 9"):
        codec.compress(_img(photo_like(8, 8, rng)), 9)


@pytest.mark.parametrize("name", ["tiny-hp", "tiny-cb"])
def test_corrupt_streams_never_crash(rng, name):
    """Random damage behind a valid CRC: a clean DecodeError or some image, nothing else."""
    codec = api.load_codec(name)
    lat = latformat.unpack(codec.compress(_img(photo_like(70, 70, rng)), 3))
    for trial in range(60):
        streams = [bytearray(s) for s in lat.streams]
        k = trial % len(streams)
        if trial % 3 == 0 or not streams[k]:
            streams[k] = bytearray(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes())
        else:
            pos = int(rng.integers(0, len(streams[k])))
            streams[k][pos] ^= 1 << int(rng.integers(0, 8))
        bad = latformat.LatFile(**{**lat.__dict__, "streams": tuple(bytes(s) for s in streams)})
        try:
            out = codec.decompress(bad)
            assert out.pixels.shape == (70, 70, 3)
        except api.DecodeError:
            pass


def test_escape_varints_round_trip():
    vals = [0, 1, -1, 63, -64, 64, 10**6, -(10**6), (1 << 30) - 1, -(1 << 30)]
    r = coding.EscapeReader(coding.pack_escapes(vals))
    assert r.take(len(vals)).tolist() == vals
    r.finish()
    with pytest.raises(coding.CodingError):
        coding.EscapeReader(b"\x80").take(1)


def test_bad_model_file_is_a_user_error(tmp_path, rng):
    files = registry.resolve("tiny-hp", "codec")
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(files.weights.read_bytes()[:-10])
    (tmp_path / "broken.json").write_text(files.weights.with_suffix(".json").read_text())
    with pytest.raises(UserError, match="fingerprint|cannot read"):
        api.load_codec(str(bad))


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path):
    """The fingerprint hashes the weights file: saving equal weights must give equal files (a
    re-export of a checkpoint must still decode the .lat files of the first export)."""
    import hashlib

    import torch

    from aecli import registry

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(4, dtype=torch.int64)}
    meta = {"name": "same", "task": "codec", "architecture": {}, "qualities": [1]}
    digests = set()
    for i in range(12):
        registry.save(tensors, meta, tmp_path / f"r{i}" / "same.safetensors")
        digests.add(hashlib.sha256((tmp_path / f"r{i}" / "same.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_exact_decoding_is_one_function_of_the_file(rng, monkeypatch):
    """decompress(exact=True): fixed-point synthesis, so the same pixels whatever the thread count,
    memory layout or tiling, and within a level or two of the float decode."""
    from aecli import tiling

    codec = api.load_codec("tiny-hp")
    lat = latformat.unpack(codec.compress(_img(photo_like(150, 170, rng)), 3))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.decompress(lat, exact=True).pixels
        torch.set_num_threads(2)
        two = codec.decompress(lat, exact=True).pixels
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(one, two)
    monkeypatch.setattr(tiling, "TILE", 3)  # 48-pixel tiles with their full-receptive-field halo
    assert np.array_equal(codec.decompress(lat, exact=True).pixels, one)
    y_hat = torch.randn(1, codec.model.m, 4, 5) * 3
    a = codec.transforms.synthesise_exact(y_hat, 1)
    b = codec.transforms.synthesise_exact(y_hat.contiguous(memory_format=torch.channels_last), 1)
    assert torch.equal(a, b)
    monkeypatch.undo()
    float_px = codec.decompress(lat).pixels.astype(int)
    d = np.abs(float_px - one.astype(int))
    assert d.max() <= 2 and d.mean() < 0.2


def test_exact_integer_synthesis_is_order_free():
    """Each fixed-point layer sums integers below 2**53: splitting a transposed convolution over its
    input channels and adding the parts gives exactly the whole (any summation order would)."""
    import torch.nn.functional as F

    from aecli.codec import intnet

    codec = api.load_codec("tiny-hp")
    net = intnet.synthesis(codec.model.g_s)
    first = net[0]
    a = torch.randint(-(1 << 22) + 1, 1 << 22, (1, codec.model.m, 5, 6)).double()
    whole = F.conv_transpose2d(a, first._w, first._b, first.stride, first.padding, first.output_padding)
    h = a.shape[1] // 2
    parts = (F.conv_transpose2d(a[:, :h], first._w[:h], None, first.stride, first.padding, first.output_padding)
             + F.conv_transpose2d(a[:, h:], first._w[h:], first._b, first.stride, first.padding, first.output_padding))
    assert torch.equal(whole, parts) and torch.equal(whole, torch.round(whole))
    assert [type(layer).__name__ for layer in net] == ["IntLayer", "IntIGDN"] * 3 + ["IntLayer"]


@pytest.mark.parametrize("name", ["tiny-hp", "tiny-cb"])
def test_eval_mode_rate_is_the_code_length_of_the_coded_symbols(rng, name):
    """In eval mode (validation) the model takes its likelihoods at the rounded latents, like the
    coder: the same figure every time, and close to the bits actually written. (The training-time
    stand-in, uniform noise, overstates low rates: 2.4x here at quality 1.)"""
    codec = api.load_codec(name)
    px = photo_like(128, 192, rng)
    x = torch.from_numpy(px).permute(2, 0, 1)[None].float() / 255
    model = codec.model
    assert not model.training
    for q in (1, 3):
        with torch.no_grad():
            a, b = (model(x, torch.tensor([q - 1]))["likelihoods"] for _ in range(2))
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        bpp = sum(torch.log2(v).sum() for v in a).item() / -(128 * 192)
        lat = latformat.unpack(codec.compress(_img(px), q, scale=8))  # the image's own size, as the model saw it
        coded = sum(len(s) for s in lat.streams) * 8 / (128 * 192)
        assert abs(bpp - coded) < 0.005 + 0.05 * coded, (q, bpp, coded)


def _np_conv_transpose(a: np.ndarray, w: np.ndarray, stride: int, padding: int, output_padding: int) -> np.ndarray:
    """Transposed convolution in int64 numpy, by scattering each input position's products (no BLAS,
    no floating point): the reference for the fixed-point synthesis."""
    n, cin, h, wd = a.shape
    cout, k = w.shape[1], w.shape[2]
    full = np.zeros((n, cout, (h - 1) * stride + k + output_padding, (wd - 1) * stride + k + output_padding), np.int64)
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum("nc,cokl->nokl", a[:, :, i, j], w)
    oh, ow = (h - 1) * stride - 2 * padding + k + output_padding, (wd - 1) * stride - 2 * padding + k + output_padding
    return full[:, :, padding:padding + oh, padding:padding + ow]


def _np_rescale(acc: np.ndarray, shift: int) -> np.ndarray:
    """round half up of acc * 2**-shift, in integers"""
    return (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift


def test_exact_synthesis_equals_an_integer_numpy_reference(rng):
    """decompress --exact computes one integer function: the same pixels as a reference written
    with numpy int64 arithmetic alone (no torch convolution, BLAS or floating point), so neither the
    BLAS, the device nor the float format can change them."""
    codec = api.load_codec("tiny-hp")
    net, gains = codec.transforms.fixed_point
    qi = 2
    y_hat = torch.from_numpy(rng.integers(-30, 30, (1, codec.model.m, 3, 4))).float()
    y_hat += torch.from_numpy(rng.integers(-4096, 4096, y_hat.shape) / 4096.0).float()  # 12-bit means
    got = codec.transforms.synthesise_exact(y_hat, qi)[0].numpy().astype(np.int64)

    unit = 1 << intnet.ACT_BITS
    a = np.floor(y_hat.double().numpy() * unit + 0.5).astype(np.int64)
    a = np.clip(_np_rescale(a * gains[qi].numpy().astype(np.int64).reshape(1, -1, 1, 1), intnet.ACT_BITS),
                -intnet.ACT_LIMIT, intnet.ACT_LIMIT)
    t = torch.from_numpy(a).double()
    for layer in net:
        t = layer(t)  # every layer's activations too, not only the 8-bit pixels
        if isinstance(layer, intnet.IntIGDN):
            gamma = layer._w.numpy().astype(np.int64)[:, :, 0, 0]
            acc = np.einsum("ij,njhw->nihw", gamma, np.abs(a)) + layer._b.numpy().astype(np.int64).reshape(1, -1, 1, 1)
            norm = np.clip(_np_rescale(acc, layer.shift), 0, intnet.NORM_LIMIT)
            a = np.clip(_np_rescale(a * norm, intnet.ACT_BITS), -intnet.ACT_LIMIT, intnet.ACT_LIMIT)
        else:
            acc = _np_conv_transpose(a, layer.weight.numpy().astype(np.int64), layer.stride, layer.padding,
                                     layer.output_padding) + layer.bias.numpy().reshape(1, -1, 1, 1)
            a = np.clip(_np_rescale(acc, layer.shift), -intnet.ACT_LIMIT, intnet.ACT_LIMIT)
        assert np.array_equal(t.numpy().astype(np.int64), a) and np.abs(a).max() > 100
    want = np.clip(_np_rescale(a * 255, intnet.ACT_BITS), 0, 255)
    assert got.shape == want[0].shape
    assert np.array_equal(got, want[0])


def test_older_weights_kept_for_decoding(tmp_path, monkeypatch, rng):
    """After a model's weights are replaced, files written with the old ones still decode with the
    old ones (scripts/retire_weights.py keeps them, decode only), and compressing uses the new."""
    import json

    from aecli import format as latformat
    from aecli import inspection, registry
    from aecli.codec import api
    from aecli.errors import UserError
    from aecli.images.image import Image
    from conftest import make_tiny_codec
    from scripts import retire_weights

    d = tmp_path / "models"
    make_tiny_codec("hyperprior", "swap", d, seed=1)
    img = Image(pixels=rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), alpha=None, mode="RGB", source_bits=8)
    monkeypatch.setenv("AECLI_MODEL_PATH", str(d))
    old_file = api.load_codec("swap").compress(img, 2)
    old_fp = latformat.unpack(old_file).fingerprint
    old_pixels = api.load_codec("swap").decompress(latformat.unpack(old_file)).pixels

    kept = retire_weights.retire("swap", d)
    assert kept.name == f"swap-{old_fp.hex()}.safetensors"
    assert json.loads(kept.with_suffix(".json").read_text())["decode_only"] is True
    make_tiny_codec("hyperprior", "swap", d, seed=2)  # the new weights replace swap.*

    new = registry.resolve("swap", "codec")
    assert new.weights.name == "swap.safetensors" and new.fingerprint != old_fp
    assert registry.find_by_name("swap", old_fp, "codec").weights == kept
    lat = latformat.unpack(old_file)
    assert np.array_equal(api.codec_for(lat).decompress(lat).pixels, old_pixels)
    assert latformat.unpack(api.load_codec("swap").compress(img, 2)).fingerprint == new.fingerprint
    rows = [r for r in inspection.model_rows() if r["name"] == "swap"]
    assert sorted(r["decode_only"] for r in rows) == [False, True]
    assert "decodes its files, does not write" in inspection.format_models(rows)
    with pytest.raises(UserError, match=f"has {new.fingerprint.hex()}, {old_fp.hex()}|has {old_fp.hex()}, "):
        registry.find_by_name("swap", b"\x00\x00\x00\x00", "codec")
    (d / "swap.safetensors").unlink()
    (d / "swap.json").unlink()
    with pytest.raises(UserError, match="only as older weights"):
        registry.resolve("swap", "codec")


def test_checkerboard_codes_in_two_halves_with_a_context_that_matters(rng, monkeypatch):
    """A checkerboard file holds z, the anchors, the other half and the escapes; its integer
    context path follows the float model it was exported from (the same table for nearly every
    latent), the context changes the bits, and tiling the context pass changes nothing."""
    codec = api.load_codec("tiny-cb")
    img = _img(photo_like(150, 170, rng))
    data = codec.compress(img, 3)
    lat = latformat.unpack(data)
    assert len(lat.streams) == 4 and all(lat.streams[1:3])
    qi = 2
    y_base = codec.analyse(img)
    with torch.inference_mode():
        y, z = codec.latents(y_base, qi)
        z_sym = torch.round(z).clamp(-Z_LIMIT, Z_LIMIT).to(torch.int64)
        hyper = codec.latent_coding.hyper_ints(z_sym, qi)
        model = codec.model
        params = model.h_s(z_sym.float() * torch.exp(model.inv_hgain[qi]).view(1, -1, 1, 1))
        scales, means = model.condition(y, params, torch.round)
        first = anchors(*y.shape[-2:])
        half = first[0, 0].bool().numpy()
        idx_a, m_a = codec.latent_coding.params(hyper, None, half)
        y_anchor = torch.floor((torch.round(y - m_a) + m_a).double() * 4096 + 0.5) * first
        idx_b, m_b = codec.latent_coding.params(hyper, y_anchor, ~half)
    got = m_a * first + m_b * (1 - first)
    assert (got - means).abs().max() < 0.05
    want = torch.searchsorted(codec.latent_coding.thresholds.float(), (scales * 4096).contiguous()).clamp(0, len(codec.latent_coding.y_pmfs) - 1)
    idx = np.where(first.bool().numpy(), idx_a, idx_b)
    assert (idx == want.numpy()).mean() > 0.98
    b = ~half
    full_a, _ = codec.latent_coding.params(hyper, torch.zeros_like(y_anchor), b)
    assert not np.array_equal(idx_b[..., b], full_a[..., b])  # the context moved some tables
    # the context convolution at chosen positions and taps = the whole integer layer there
    layer = codec.latent_coding.ctx[0]
    pos = torch.from_numpy(b).flatten().nonzero().squeeze(1)
    taps = [(i, j) for i in range(5) for j in range(5) if (i + j) % 2]
    whole = layer(y_anchor.clone()).flatten(2)[:, :, pos]
    assert torch.equal(layer.at(y_anchor, pos, taps), whole)
    # the correction network on a set of positions = the same 1x1 convolutions on the grid
    a = torch.cat([hyper.double(), torch.randint(-5000, 5000, hyper.shape).double()], dim=1)
    grid = intnet.run(codec.latent_coding.ep, a)
    assert torch.equal(intnet.run_pointwise(codec.latent_coding.ep, a[0].flatten(1)), grid[0].flatten(1))
    monkeypatch.setattr(checkerboard, "CONTEXT_TILE", 2)  # context pass in 2x2-latent tiles with their 2-latent halo
    monkeypatch.setattr(hyperprior, "HYPER_TILE", 1)  # and hyper-synthesis in single cells with their 2-cell halo
    assert codec.compress(img, 3) == data


def test_a_file_needs_its_model_kind(rng):
    """Streams of a hyperprior file are not a checkerboard file: the count is checked first."""
    hp, cb = api.load_codec("tiny-hp"), api.load_codec("tiny-cb")
    lat = latformat.unpack(hp.compress(_img(photo_like(40, 40, rng)), 2))
    fake = latformat.LatFile(**{**lat.__dict__, "model": "tiny-cb", "fingerprint": cb.files.fingerprint})
    with pytest.raises(api.DecodeError, match="missing streams"):
        cb.decompress(fake)

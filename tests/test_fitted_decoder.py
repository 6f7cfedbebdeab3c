"""The fitted codec's numpy decoder (aecli/codec/fitted/decoder.py, intarm.py) against the torch
networks the fit trains: the same features, the same synthesis (within float32 rounding), and a
whole `aecli decompress` of a fitted file without importing torch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aecli.codec.fitted import context, decoder, header
from aecli.codec.fitted.nets import Arm, Synthesis, load_integers, quantise, tensors

VECTORS = Path(__file__).parent / "vectors"


@pytest.mark.parametrize("h, w", [(7, 9), (8, 8), (1, 5), (2, 1)])
def test_coded_features_match_the_fit(h, w):
    rng = np.random.default_rng(h * w)
    y = rng.integers(-5, 6, (h, w)).astype(np.float64)
    coarse = rng.integers(-5, 6, (-(-h // 2), -(-w // 2))).astype(np.float64)
    for c in (coarse, None):
        for p in range(len(context.PHASES)):
            got = context.coded_features(y, c, p)
            want = context.phase_features(torch.from_numpy(y), None if c is None else torch.from_numpy(c), p, 0, 3,
                                          compact=True).t().numpy()
            assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("version, refine, size", [(1, 0, (13, 10)), (2, 1, (13, 10)), (3, 0, (16, 24)),
                                                   (4, 2, (9, 17)), (4, 0, (1, 3))])
def test_synthesis_matches_the_torch_one(version, refine, size):
    torch.manual_seed(version + refine)
    s = header.Structure(levels=4, version=version, refine=refine)
    arm, synth = Arm(s), Synthesis(s)
    with torch.no_grad():
        for t in synth.parameters():
            t.normal_(0, 0.5)
    ints = [quantise(t, 10) for t in tensors(arm, synth)]
    exps = (10,) * len(ints)
    s = header.Structure(**{**s.__dict__, "exponents": exps, "tables": (0,) * len(ints)})
    load_integers(arm, synth, ints, exps)
    h, w = size
    planes = [np.random.default_rng(k).integers(-4, 5, shape).astype(np.float64)
              for k, shape in enumerate(header.plane_sizes(w, h, s.levels))]
    with torch.no_grad():
        want = synth([torch.from_numpy(p).float() for p in planes], size)[0].numpy()
    got = decoder.synthesis(s, ints, planes, size)
    assert got.shape == want.shape == (3, h, w)
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("size", [(5, 7), (13, 10), (3, 40)])
def test_interpolate_matches_torch(size):
    p = np.random.default_rng(1).normal(size=(4, 6))
    want = F.interpolate(torch.from_numpy(p)[None, None], size=size, mode="bicubic", align_corners=False)[0, 0]
    assert np.abs(decoder.interpolate(p, size) - want.numpy()).max() < 1e-5


def test_intarm_keeps_intnet_fixed_point():
    from aecli.codec import intnet
    from aecli.codec.fitted import intarm

    assert (intarm.ACT_BITS, intarm.ACT_LIMIT, intarm.WEIGHT_LIMIT) == (intnet.ACT_BITS, intnet.ACT_LIMIT, intnet.WEIGHT_LIMIT)


def test_decompress_of_a_fitted_file_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom aecli.cli import main\nsys.argv = ['aecli', 'decompress', '-q', sys.argv[1], sys.argv[2]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code, 'torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "f.png"
    r = subprocess.run([sys.executable, "-c", code, str(VECTORS / "fitted4.lat"), str(out)], capture_output=True,
                       text=True, env=env)
    assert r.stdout.strip() == "exit 0 False", r.stderr
    from aecli.images.decode import decode_image

    got = decode_image(out.read_bytes()).pixels.astype(int)
    ref = decode_image((VECTORS / "fitted4.decoded.png").read_bytes()).pixels.astype(int)
    assert np.abs(got - ref).max() <= 1

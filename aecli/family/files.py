"""The family's commands on files: embed, score, reconstruct, sample.

Inputs are an image file or a folder (recursive; the first subfolder is an image's label).
Data goes to the output file or stdout, messages to stderr; outputs are written atomically and
never over an input. Unreadable images are reported, skipped, and make the exit code 1.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from .. import registry
from ..atomic import check_output, write_output
from ..errors import UserError
from ..images.encode import encode_image, format_from_path
from .data import list_files, load_folder


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _load(model: str | None, src: str, quiet: bool):
    from . import api

    if src == "-":
        raise UserError("these commands read image files or folders, not stdin")
    list_files(Path(src))  # a missing input fails before torch loads
    m = api.load(model)
    data = load_folder(Path(src), m.shape, quiet=quiet)
    return m, data


def _inputs(src: str) -> list[Path]:
    p = Path(src)
    return list_files(p) if p.exists() else []


def _write_picture(dst: str, pixels: np.ndarray, inputs, force: bool) -> None:
    write_output(dst, encode_image(pixels, format_from_path(dst)), inputs=inputs, force=force)


def _check_outputs(outputs: list[str | None], src: str | None, force: bool) -> None:
    """Outputs that may not be written fail before the model loads (an existing file needs --force)."""
    inputs = _inputs(src) if src else []
    for out in outputs:
        if out:
            check_output(out, inputs=inputs, force=force)


def embed(src: str, output: str, *, model: str | None, plot: str | None, quiet: bool, force: bool = False) -> int:
    """Codes of every image: .npy (N x latent), .npz (codes, paths, labels) or CSV (path, label, z0..)."""
    from . import api

    suffix = Path(output).suffix.lower() if output != "-" else ".csv"
    if suffix not in (".npy", ".npz", ".csv"):
        raise UserError(f"embed writes .npy, .npz or .csv, not {output}")
    if plot:
        format_from_path(plot)
    _check_outputs([output, plot], src, force)
    m, data = _load(model, src, quiet)
    codes = api.encode(m.model, data.floats())
    rel = [str(p) for p in data.paths]
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, codes)
        payload = buf.getvalue()
    elif suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, codes=codes, paths=np.array(rel), labels=np.array(data.labels))
        payload = buf.getvalue()
    else:
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["path", "label", *[f"z{i}" for i in range(codes.shape[1])]])
        for p, lab, row in zip(rel, data.labels, codes):
            w.writerow([p, lab, *[f"{v:.6g}" for v in row]])
        payload = text.getvalue().encode()
    if plot:  # the picture first: a refused plot path leaves no codes behind either
        from .pictures import code_map

        _write_picture(plot, code_map(codes, data.labels, title=f"{m.name}: PCA of {codes.shape[1]}-d codes, "
                                                                 f"{len(codes)} images"), _inputs(src), force)
    write_output(output, payload, inputs=_inputs(src), force=force)
    _say(f"embed: {len(codes)} images -> {codes.shape[1]}-d codes ({m.name}) -> {output}", quiet)
    return 1 if data.skipped else 0


def score(src: str, output: str, *, model: str | None, threshold: float | None, quiet: bool, force: bool = False) -> int:
    """Anomaly scores as CSV: path,score,anomaly (1 when score > threshold)."""
    from . import api

    _check_outputs([output], src, force)
    m, data = _load(model, src, quiet)
    if threshold is None:
        threshold = m.threshold
        if threshold is None:
            raise UserError(f"model '{m.name}' has no calibrated threshold; give --threshold")
    s = api.scores(m.model, data.floats(), pool=m.pool)
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(["path", "score", "anomaly"])
    flagged = 0
    for p, v in zip(data.paths, s):
        bad = int(v > threshold)
        flagged += bad
        w.writerow([str(p), f"{v:.6g}", bad])
    write_output(output, text.getvalue().encode(), inputs=_inputs(src), force=force)
    _say(f"score: {len(s)} images, threshold {threshold:.6g}, {flagged} flagged as anomalies ({m.name})", quiet)
    return 1 if data.skipped else 0


def reconstruct(src: str, output: str, *, model: str | None, count: int, cols: int, quiet: bool,
                force: bool = False) -> int:
    """A grid picture: a row of inputs over a row of their reconstructions, repeated."""
    from . import api
    from .pictures import grid

    if count < 1 or cols < 1:
        raise UserError("-n and --cols must be positive")
    format_from_path(output)
    _check_outputs([output], src, force)
    m, data = _load(model, src, quiet)
    x = data.floats()[:count]
    r = api.reconstruct(m.model, x)
    cols = min(cols, len(x))  # 5 images make a 5-column grid, not 8 columns with 3 blank
    rows = []
    for i in range(0, len(x), cols):
        a, b = x[i : i + cols], r[i : i + cols]
        pad = cols - len(a)
        if pad:
            a = np.concatenate([a.numpy(), np.ones((pad, *a.shape[1:]), np.float32)])
            b = np.concatenate([b.numpy(), np.ones((pad, *b.shape[1:]), np.float32)])
        rows += [np.asarray(a), np.asarray(b)]
    _write_picture(output, grid(np.concatenate(rows), cols), _inputs(src), force)
    err = float(((r - x) ** 2).mean())
    _say(f"reconstruct: {len(x)} images, mean squared error {err:.5f} ({m.name}) -> {output}", quiet)
    return 1 if data.skipped else 0


def sample(output: str, *, model: str | None, count: int, seed: int, temperature: float, interpolate: list[str] | None,
           steps: int, quiet: bool, force: bool = False) -> int:
    """A grid of VAE samples, or the decoded walk between two images' codes."""
    from . import api
    from .data import load_one
    from .pictures import grid

    format_from_path(output)
    if count < 1 or steps < 2:
        raise UserError("-n must be positive and --steps at least 2")
    check_output(output, inputs=interpolate or [], force=force)
    m = api.load(model or registry.SAMPLER)
    if interpolate:
        import torch

        a, b = (torch.from_numpy(np.array(load_one(Path(p), m.shape)[None])).float().div(255.0) for p in interpolate)
        imgs = api.interpolate(m.model, a, b, steps)
        _write_picture(output, grid(imgs.numpy(), steps), interpolate, force)
        _say(f"sample: {steps}-step interpolation {interpolate[0]} -> {interpolate[1]} ({m.name}) -> {output}", quiet)
        return 0
    imgs = api.sample(m.model, count, seed=seed, temperature=temperature)
    cols = int(np.ceil(np.sqrt(count)))
    _write_picture(output, grid(imgs.numpy(), cols), [], force)
    _say(f"sample: {count} images from N(0, {temperature:g}^2 I), seed {seed} ({m.name}) -> {output}", quiet)
    return 0

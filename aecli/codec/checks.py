"""What a codec model's files must hold before anything is built from them.

A model's JSON can claim any architecture and its weights file can hold any tensors; a damaged
or hostile pair must end in one line naming the model, never in a traceback, a hang or an
allocation out of proportion to the files.  So, in this order:

1. ``check_files``: the architecture (codec.model.check_config bounds every width and the number
   of levels), the qualities against the levels, the name against the .lat format's rules, and
   the weights the architecture needs against the size of the .safetensors file (counted on
   torch's meta device, which allocates nothing).
2. ``check_tensors``, once the weights are read (fingerprint checked): every float tensor
   finite, the probability tables integer, positive and of the number and length the coder can
   use, the integer networks of the shapes of their float templates.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import format as latformat
from .. import registry
from ..errors import UserError
from . import intnet
from .model import CheckerboardCodec, HyperpriorCodec, build, check_config

MAX_TABLE = 1 << 16  # entries of one probability table (the bundled models' longest has 8,193)
MAX_SHIFT = 64  # |shift| of an integer layer (export gives -64..24)


def check_files(files: registry.ModelFiles) -> dict:
    """The checked architecture of a codec model (UserError naming the model otherwise)."""
    meta = files.meta
    try:
        arch = check_config(meta.get("architecture"))
    except ValueError as exc:
        raise UserError(f"model '{files.name}': bad architecture in its metadata: {exc}") from None
    qualities = meta.get("qualities")
    if not qualities or len(qualities) > len(arch["lambdas"]):
        raise UserError(f"model '{files.name}': its metadata needs 1..{len(arch['lambdas'])} \"qualities\" "
                        f"(one per level of its architecture)")
    if not latformat.valid_name(files.name):
        raise UserError(f"model '{files.name}': the name cannot be written into .lat files "
                        f"({latformat.NAME_RULE}); set \"name\" in {files.weights.with_suffix('.json')}, "
                        f"e.g. to '{latformat.normalise_name(files.name)}'")
    registry.check_size(files, lambda: build(arch))
    return arch


def _bad(files: registry.ModelFiles, what: str):
    raise UserError(f"model '{files.name}': damaged or incompatible weights ({what})")


def check_tensors(files: registry.ModelFiles, tensors: dict, model: nn.Module) -> None:
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            _bad(files, f"{k} is not finite")
    hyper = isinstance(model, HyperpriorCodec)
    _check_tables(files, tensors, "y", None if hyper else model.m)
    if hyper:
        _check_tables(files, tensors, "z", model.nh)
        th = _integer(files, tensors, "tables.y.thresholds", 1)
        if len(th) < 1 or bool((th[1:] < th[:-1]).any()):
            _bad(files, "tables.y.thresholds must be increasing")
        _integer(files, tensors, "int.inv_hgain", 2, (len(model.lambdas), model.nh))
        _check_ints(files, tensors, "int.h_s.", model.h_s)
    if isinstance(model, CheckerboardCodec):
        _check_ints(files, tensors, "int.ctx.", nn.Sequential(model.ctx))
        _check_ints(files, tensors, "int.ep.", model.ep)


def _integer(files, tensors: dict, key: str, dim: int, shape: tuple | None = None) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        _bad(files, f"{key} is missing")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.dim() != dim:
        _bad(files, f"{key} must be a {dim}-d integer tensor")
    if shape is not None and tuple(t.shape) != shape:
        _bad(files, f"{key} has shape {tuple(t.shape)}, not {shape}")
    return t


def _check_tables(files, tensors: dict, which: str, count: int | None) -> None:
    """tables.<which>.pmf/len/offset: `count` tables (None: any number) of 2..MAX_TABLE positive counts."""
    pmf = _integer(files, tensors, f"tables.{which}.pmf", 1).to(torch.int64)
    lengths = _integer(files, tensors, f"tables.{which}.len", 1).to(torch.int64)
    offsets = _integer(files, tensors, f"tables.{which}.offset", 1).to(torch.int64)
    n = len(lengths)
    if n == 0 or (count is not None and n != count) or len(offsets) != n:
        _bad(files, f"{which} tables: {n} tables and {len(offsets)} offsets, where the model needs {count or 'some'}")
    if int(lengths.min()) < 2 or int(lengths.max()) > MAX_TABLE or int(lengths.sum()) != len(pmf):
        _bad(files, f"{which} tables: lengths must be 2..{MAX_TABLE} and add up to the counts")
    if len(pmf) and (int(pmf.min()) < 1 or int(pmf.max()) > 1 << 30):
        _bad(files, f"{which} tables: every count must be 1..2^30 (a zero-probability table cannot code)")
    if int(offsets.abs().max()) > 1 << 30:
        _bad(files, f"{which} tables: offsets out of range")


def _check_ints(files, tensors: dict, prefix: str, template: nn.Sequential) -> None:
    """The integer layers under `prefix` have the shapes of `template`'s (de)convolutions."""
    convs = [m for m in template if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for i, layer in enumerate(convs):
        w = _integer(files, tensors, f"{prefix}{i}.weight", 4, tuple(layer.weight.shape)).to(torch.int64)
        _integer(files, tensors, f"{prefix}{i}.bias", 1, (layer.weight.shape[1 if isinstance(layer, nn.ConvTranspose2d) else 0],))
        shift = _integer(files, tensors, f"{prefix}{i}.shift", 1, (1,))
        if abs(int(shift[0])) > MAX_SHIFT or int(w.abs().max()) > intnet.WEIGHT_LIMIT:
            _bad(files, f"{prefix}{i}: shift or weights out of range")

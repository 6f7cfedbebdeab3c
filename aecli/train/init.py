"""Start a training run from another model's weights (`aecli train --init NAME|PATH`).

The source is a bundled or installed model by name, a model's .safetensors/.json or folder by
path, or a training checkpoint (.pt, loaded with weights_only=True). Every tensor of the new
model whose name and shape match is copied; a convolution whose input channels differ (say, a
noise-level map added or removed) takes the channels both have, and the others start at zero.
The run then trains from there with its own recipe; only the weights are taken, never the
optimiser's state or the schedule.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UserError


def _checkpoint(spec: str) -> dict | None:
    """The training checkpoint SPEC names (weights_only), loaded once for the three questions asked of
    it; None when SPEC is not a .pt file."""
    p = Path(spec)
    if not (p.suffix == ".pt" and p.is_file()):
        return None
    st = p.stat()
    return _load_checkpoint(spec, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1)
def _load_checkpoint(spec: str, mtime_ns: int, size: int) -> dict:  # the file's stamp: a rewritten file is read again
    try:
        state = torch.load(Path(spec), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is the user's error here
        raise UserError(f"--init {spec}: not a readable aecli checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"--init {spec}: not an aecli training checkpoint")
    return state


def source_tensors(spec: str, task: str) -> tuple[str, dict[str, torch.Tensor]]:
    """(a description of the source, its tensors) for --init SPEC."""
    state = _checkpoint(spec)
    if state is not None:
        return f"checkpoint {spec} (step {state.get('step', '?')})", state["model"]
    from .. import registry

    files = registry.resolve(spec, task)
    return f"model '{files.name}' ({files.weights})", registry.load_tensors(files)


def source_architecture(spec: str, task: str, of_recipe) -> dict:
    """The architecture of --init SPEC: its JSON's "architecture", or for a checkpoint what the
    task's `of_recipe(config)` makes of the recipe it saved (each family knows its own); {} if
    unknown."""
    try:
        state = _checkpoint(spec)
    except UserError:  # reported when the weights are loaded
        return {}
    if state is not None:
        return of_recipe(state.get("config") or {})
    from .. import registry

    arch = registry.resolve(spec, task).meta.get("architecture")
    return dict(arch) if isinstance(arch, dict) else {}


def source_training(spec: str, task: str) -> dict:
    """The training record of --init SPEC: a checkpoint's steps, seconds and segments, or a model
    JSON's "training" block (with its own lineage, if any)."""
    state = _checkpoint(spec)
    if state is not None:
        cfg = state.get("config") or {}
        return {"steps": state.get("step"), "seconds": round(float(state.get("seconds") or 0.0), 1),
                "segments": state.get("segments") or [], "init": cfg.get("init"),
                "noise": (cfg.get("extra") or {}).get("noise")}
    from .. import registry

    training = registry.resolve(spec, task).meta.get("training")
    return dict(training) if isinstance(training, dict) else {}


def load_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> tuple[int, int, list[str]]:
    """Copy what fits into `model`: (tensors copied whole, tensors copied in part, names left as built)."""
    own = model.state_dict()
    whole = part = 0
    left = []
    with torch.no_grad():
        for name, dst in own.items():
            src = tensors.get(name)
            if src is None or src.dim() != dst.dim():
                left.append(name)
            elif src.shape == dst.shape:
                dst.copy_(src.to(dst.dtype))
                whole += 1
            elif src.dim() == 4 and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:
                c = min(src.shape[1], dst.shape[1])  # input channels: the common ones, the rest zero
                dst.zero_()
                dst[:, :c].copy_(src[:, :c].to(dst.dtype))
                part += 1
            else:
                left.append(name)
    return whole, part, left


def initialise(model: torch.nn.Module, spec: str, task: str, log=print) -> None:
    what, tensors = source_tensors(spec, task)
    whole, part, left = load_into(model, tensors)
    total = whole + part + len(left)
    if whole + part < total / 2:
        raise UserError(f"--init {spec}: only {whole + part} of the {total} tensors of the new model fit {what}; "
                        "give a model of the same kind and architecture")
    log(f"initialised from {what}: {whole} tensors copied, {part} in part, {len(left)} new"
        + (f" ({', '.join(left[:4])}{', ...' if len(left) > 4 else ''})" if left else ""))

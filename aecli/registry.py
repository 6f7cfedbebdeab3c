"""Models on disk: bundled weights, user models, safetensors + JSON metadata, fingerprints.

A model is two files side by side: NAME.safetensors (tensors, no pickle) and NAME.json
(metadata: task, architecture, qualities, training record, validation figures, fingerprint).
The fingerprint is the first 4 bytes of the SHA-256 of the .safetensors file; .lat files
carry it so that decoding with different weights fails with a clear message.

When a model's weights are replaced, the old ones can stay installed under another file name with
``"decode_only": true`` in their JSON (scripts/retire_weights.py): files written with them still
decode (``find_by_name`` matches name and fingerprint), while compressing by name uses the current
weights (``resolve`` skips decode-only models).

This module imports no torch at module level: `aecli models` and `aecli info` use it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

# In a source checkout the weights sit beside the package; an install maps them to aecli/weights.
SOURCE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
# the bundled model each task uses when none is named; `aecli sample` needs a VAE: SAMPLER
DEFAULTS = {"codec": "hpc", "denoise": "dn", "autoencoder": "fashion-ae"}
SAMPLER = "fashion-vae"


def _bundled_dir() -> Path:
    """Bundled weights: aecli/weights in an install, ./weights in a source checkout."""
    try:
        from importlib.resources import files

        return Path(str(files("aecli.weights")))
    except (ModuleNotFoundError, TypeError):  # running from a source tree without installing
        return SOURCE_WEIGHTS


def user_dirs() -> list[Path]:
    """Folders searched for user models by name: $AECLI_MODEL_PATH (os.pathsep list), then ~/.aecli/models."""
    dirs = [Path(p) for p in os.environ.get("AECLI_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(os.environ.get("AECLI_HOME", Path.home() / ".aecli")) / "models")
    return dirs


@dataclass
class ModelFiles:
    name: str
    weights: Path
    meta: dict = field(default_factory=dict)
    bundled: bool = False

    @property
    def task(self) -> str:
        return self.meta.get("task", "?")

    @property
    def fingerprint(self) -> bytes:
        return bytes.fromhex(self.meta["fingerprint"])

    @property
    def decode_only(self) -> bool:
        """Older weights kept so that files written with them still decode."""
        return bool(self.meta.get("decode_only", False))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint_of(path: Path) -> str:
    return file_sha256(path)[:8]


def _from_weights(path: Path, bundled: bool = False) -> ModelFiles:
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise UserError(f"model metadata {meta_path} is missing") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read model metadata {meta_path}: {exc}") from None
    return ModelFiles(meta.get("name", path.stem), path, meta, bundled)


def _in_dir(d: Path, bundled: bool = False) -> list[ModelFiles]:
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.safetensors")):
        if p.with_suffix(".json").exists():
            try:
                out.append(_from_weights(p, bundled))
            except UserError:
                continue
    return out


def bundled() -> list[ModelFiles]:
    return _in_dir(_bundled_dir(), bundled=True)


def all_models(extra: list[Path] = ()) -> list[ModelFiles]:
    seen, out = set(), []
    for m in bundled() + [m for d in [*extra, *user_dirs()] for m in _in_dir(d)]:
        key = m.weights.resolve()
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def resolve(spec: str | None, task: str) -> ModelFiles:
    """A model by path (file or training folder), bundled name, or user model name."""
    if not spec:
        spec = DEFAULTS.get(task, "")
    p = Path(spec)
    candidates: list[Path] = []
    if p.suffix == ".safetensors":
        candidates.append(p)
    elif p.is_dir():
        candidates += sorted(p.glob("*.safetensors"))
    elif p.with_suffix(".safetensors").exists():
        candidates.append(p.with_suffix(".safetensors"))
    for c in candidates:
        if c.exists():
            m = _from_weights(c)
            break
    else:
        named = [m for m in all_models() if m.name == spec]
        matches = [m for m in named if not m.decode_only]
        if not matches:
            if named:
                raise UserError(f"model '{spec}' is installed only as older weights, which decode files "
                                f"but do not write them (see 'aecli models')")
            raise UserError(f"model '{spec}' not found (see 'aecli models')")
        m = matches[0]
    if m.task != task:
        raise UserError(f"model '{m.name}' is a {m.task} model, not a {task} model")
    return m


def find_by_name(name: str, fingerprint: bytes, task: str) -> ModelFiles:
    """The model a .lat file names; error naming what is needed if absent or different."""
    candidates = [m for m in all_models() if m.name == name]
    for m in candidates:
        if m.meta.get("fingerprint") == fingerprint.hex():
            return m
    if candidates:
        have = ", ".join(str(m.meta.get("fingerprint")) for m in candidates)
        raise UserError(
            f"this file needs model '{name}' with fingerprint {fingerprint.hex()}; "
            f"the installed '{name}' has {have} (different weights)"
        )
    raise UserError(f"this file needs model '{name}' (fingerprint {fingerprint.hex()}), which is not installed")


def save(tensors: dict, meta: dict, weights_path: Path) -> ModelFiles:
    """Write NAME.safetensors and NAME.json atomically; fills meta['fingerprint']."""
    from safetensors.torch import save_file

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    # one metadata entry: safetensors writes several in no fixed order, and the fingerprint hashes the
    # file, so the same weights must always give the same bytes
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"aecli": json.dumps({"name": meta["name"], "task": meta["task"]}, sort_keys=True)})
    meta = dict(meta, fingerprint=fingerprint_of(tmp))
    meta_path = weights_path.with_suffix(".json")
    tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
    for t in (tmp, tmp_meta):
        os.chmod(t, 0o644)
    os.replace(tmp, weights_path)
    os.replace(tmp_meta, meta_path)
    return ModelFiles(meta["name"], weights_path, meta)


def load_tensors(m: ModelFiles) -> dict:
    """Tensors of a model, checked against the fingerprint in its metadata."""
    from safetensors.torch import load

    data = m.weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:8]
    if m.meta.get("fingerprint") and digest != m.meta["fingerprint"]:
        raise UserError(f"model '{m.name}': weights do not match their metadata fingerprint (damaged install?)")
    try:
        return load(data)
    except Exception as exc:
        raise UserError(f"model '{m.name}': cannot read {m.weights}: {exc}") from None

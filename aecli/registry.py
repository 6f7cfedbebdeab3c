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
import re
import sys
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


def home_models() -> Path:
    """Where `aecli models install` puts models: $AECLI_HOME/models (default ~/.aecli/models)."""
    return Path(os.environ.get("AECLI_HOME", Path.home() / ".aecli")) / "models"


def user_dirs() -> list[Path]:
    """Folders searched for user models by name: $AECLI_MODEL_PATH (os.pathsep list), then ~/.aecli/models.
    Each holds models, or folders that hold one (the --out folders of `aecli train`)."""
    dirs = [Path(p) for p in os.environ.get("AECLI_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(home_models())
    return dirs


FIXES = ("install it (aecli models install DIR, DIR being the folder it was trained into), put the folder that "
         "holds DIR on $AECLI_MODEL_PATH, or give --model DIR")


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


META_LIMIT = 1 << 20  # bytes of a model's JSON (the bundled ones have about 5 KB)
_FINGERPRINT = re.compile(r"[0-9a-f]{8}")
_warned: set = set()
skipped: dict[Path, str] = {}  # user models found unusable by name, and why (named in a "not found" error)


def _warn(msg: str) -> None:
    print(f"aecli: warning: {msg}", file=sys.stderr, flush=True)


def _read_meta(meta_path: Path) -> dict:
    """A model's JSON, checked to be an object of bounded size and nesting (UserError otherwise)."""
    try:
        with open(meta_path, "rb") as f:
            raw = f.read(META_LIMIT + 1)
    except FileNotFoundError:
        raise UserError(f"model metadata {meta_path} is missing") from None
    except OSError as exc:
        raise UserError(f"cannot read model metadata {meta_path}: {exc.strerror or exc}") from None
    if len(raw) > META_LIMIT:
        raise UserError(f"model metadata {meta_path} is over {META_LIMIT} bytes")
    try:
        meta = json.loads(raw)
    except RecursionError:
        raise UserError(f"model metadata {meta_path} is nested too deeply") from None
    except ValueError as exc:  # (UnicodeDecodeError and JSONDecodeError included)
        raise UserError(f"model metadata {meta_path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise UserError(f"model metadata {meta_path} is not a JSON object")
    return meta


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_meta(meta: dict, where: Path) -> None:
    """The fields every command may read (listing, lookup by name and fingerprint) have the right
    types; what a task needs to build its model is checked when it loads (UserError otherwise)."""
    def bad(what: str):
        raise UserError(f"model metadata {where}: {what}")

    for key in ("name", "task"):
        if key in meta and not (isinstance(meta[key], str) and 0 < len(meta[key]) <= 255):
            bad(f'"{key}" must be a non-empty string')
    fp = meta.get("fingerprint")
    if fp is not None and not (isinstance(fp, str) and _FINGERPRINT.fullmatch(fp)):
        bad('"fingerprint" must be 8 lowercase hexadecimal digits')
    if meta.get("task") == "codec" and fp is None:
        bad('a codec model needs its "fingerprint" (written by aecli when it exports a model)')
    if not isinstance(meta.get("decode_only", False), bool):
        bad('"decode_only" must be true or false')
    for key in ("architecture", "training", "noise", "anomaly"):
        if not isinstance(meta.get(key, {}), dict):
            bad(f'"{key}" must be an object')
    qualities = meta.get("qualities", [])
    if not (isinstance(qualities, list) and len(qualities) <= 255 and all(_is_int(q) and 1 <= q <= 255 for q in qualities)
            and len(set(qualities)) == len(qualities)):
        bad('"qualities" must be a list of distinct integers 1..255')
    if "default_quality" in meta and meta["default_quality"] not in qualities:
        bad('"default_quality" must be one of "qualities"')
    training = meta.get("training", {})
    if not (training.get("steps") is None or _is_int(training["steps"])) or not isinstance(training.get("hardware", ""), str):
        bad('"training" has a "steps" or "hardware" of the wrong type')
    kind = meta.get("architecture", {}).get("kind", "")
    if not isinstance(kind, str):
        bad('"architecture.kind" must be a string')


def _from_weights(path: Path, bundled: bool = False) -> ModelFiles:
    meta_path = path.with_suffix(".json")
    meta = _read_meta(meta_path)
    check_meta(meta, meta_path)
    return ModelFiles(meta.get("name", path.stem), path, meta, bundled)


def _in_dir(d: Path, bundled: bool = False) -> list[ModelFiles]:
    """The models in folder `d` (and, for user folders, in its subfolders: model folders); one that
    cannot be read is skipped with a one-line warning (once)."""
    if not d.is_dir():
        return []
    out = []
    files = sorted(d.glob("*.safetensors"))
    if not bundled:
        files += sorted(p for p in d.glob("*/*.safetensors") if not p.parent.name.startswith("."))
    for p in files:
        if p.with_suffix(".json").exists():
            try:
                out.append(_from_weights(p, bundled))
            except UserError as exc:
                skipped[p] = str(exc)
                if p not in _warned:
                    _warned.add(p)
                    _warn(f"skipping model {p}: {exc}")
    return out


def bundled() -> list[ModelFiles]:
    return _in_dir(_bundled_dir(), bundled=True)


def all_models(extra: list[Path] = ()) -> list[ModelFiles]:
    """Bundled models first, then those in `extra`, $AECLI_MODEL_PATH and ~/.aecli/models, in that
    order (a name is looked up in this order, so an installed model cannot shadow a bundled one)."""
    seen, out = set(), []
    for m in bundled() + [m for d in [*extra, *user_dirs()] for m in _in_dir(d)]:
        key = m.weights.resolve()
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def is_path(spec: str) -> bool:
    """A --model value is a path when it contains a path separator or starts with '.'; otherwise it is
    the name of a bundled or installed model (never a file or folder of the current directory)."""
    return "/" in spec or os.sep in spec or spec.startswith(".")


def _by_path(p: Path) -> ModelFiles:
    if p.suffix == ".safetensors":
        candidates = [p]
    elif p.is_dir():
        candidates = sorted(p.glob("*.safetensors"))
        if not candidates:
            raise UserError(f"no model in {p} (no .safetensors file)")
    else:
        try:
            candidates = [p.with_suffix(".safetensors")]
        except ValueError:  # (a path without a name)
            candidates = [p]
    if not candidates[0].exists():
        raise UserError(f"model not found: {p}")
    return _from_weights(candidates[0])


def _by_name(spec: str) -> ModelFiles:
    named = [m for m in all_models() if m.name == spec]
    matches = [m for m in named if not m.decode_only]
    if matches:
        return matches[0]
    if named:
        raise UserError(f"model '{spec}' is installed only as older weights, which decode files "
                        f"but do not write them (see 'aecli models')")
    broken = [f"{p}: {why}" for p, why in skipped.items() if p.stem == spec]
    if broken:
        raise UserError(f"model '{spec}' cannot be used: {broken[0]}")
    hint = f"; to use the file or folder ./{spec}, write --model ./{spec}" if Path(spec).exists() else ""
    raise UserError(f"model '{spec}' not found (see 'aecli models'){hint or '; if it is a model you trained, ' + FIXES}")


def resolve(spec: str | None, task: str) -> ModelFiles:
    """A model by path (file or training folder: see is_path) or by bundled or installed name."""
    if not spec:
        spec = DEFAULTS.get(task, "")
    m = _by_path(Path(spec)) if is_path(spec) else _by_name(spec)
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
    broken = [f"{p}: {why}" for p, why in skipped.items() if p.stem == name]
    if broken:
        raise UserError(f"this file needs model '{name}' (fingerprint {fingerprint.hex()}), which cannot be used: {broken[0]}")
    raise UserError(f"this file needs model '{name}' (fingerprint {fingerprint.hex()}), which is not installed: {FIXES}")


def save(tensors: dict, meta: dict, weights_path: Path) -> ModelFiles:
    """Write NAME.safetensors and NAME.json, each atomically (atomic.replace_atomically: a unique
    temporary name, fsync'ed before the rename); fills meta['fingerprint']."""
    from safetensors.torch import save as to_bytes

    from .atomic import replace_atomically

    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    # one metadata entry: safetensors writes several in no fixed order, and the fingerprint hashes the
    # file, so the same weights must always give the same bytes
    data = to_bytes({k: v.contiguous() for k, v in tensors.items()},
                    metadata={"aecli": json.dumps({"name": meta["name"], "task": meta["task"]}, sort_keys=True)})
    meta = dict(meta, fingerprint=hashlib.sha256(data).hexdigest()[:8])
    text = (json.dumps(meta, indent=2) + "\n").encode()
    replace_atomically(weights_path, lambda f: f.write(data), 0o644)
    replace_atomically(weights_path.with_suffix(".json"), lambda f: f.write(text), 0o644)
    return ModelFiles(meta["name"], weights_path, meta)


def load_tensors(m: ModelFiles) -> dict:
    """Tensors of a model (torch), checked against the fingerprint in its metadata (read_weights)."""
    from safetensors.torch import load

    return _tensors(m, load)


def load_arrays(m: ModelFiles) -> dict:
    """The same as numpy arrays, without torch (the numpy decoder's)."""
    from safetensors.numpy import load

    return _tensors(m, load)


def _tensors(m: ModelFiles, load) -> dict:
    data = read_weights(m)
    try:
        return load(data)
    except Exception as exc:
        raise UserError(f"model '{m.name}': cannot read {m.weights}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def read_weights(m: ModelFiles) -> bytes:
    """A model's .safetensors bytes, checked against the fingerprint in its metadata (which a codec
    model must have: its files name it)."""
    fp = m.meta.get("fingerprint")
    if fp is None and m.task == "codec":
        raise UserError(f"model '{m.name}': its metadata has no fingerprint ({m.weights.with_suffix('.json')})")
    try:
        data = m.weights.read_bytes()
    except OSError as exc:
        raise UserError(f"model '{m.name}': cannot read {m.weights}: {exc.strerror or exc}") from None
    if fp is not None and hashlib.sha256(data).hexdigest()[:8] != fp:
        raise UserError(f"model '{m.name}': weights do not match their metadata fingerprint (damaged install?)")
    return data


def check_size(m: ModelFiles, build) -> None:
    """Refuse a model whose architecture needs more weights than its .safetensors file holds, before
    anything is allocated: `build()` makes the model on torch's meta device (no memory), and its
    parameters and buffers must fit in the file's bytes (the models do no arithmetic there, which
    would import torch's compiler stack: codec.layers.placed).  Bundled models are part of the
    package, trusted like its code, and skip the check (docs/perf.md, "Start-up")."""
    if m.bundled:
        return
    import torch

    with torch.device("meta"):
        model = build()
    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    try:
        have = m.weights.stat().st_size
    except OSError as exc:
        raise UserError(f"model '{m.name}': cannot read {m.weights}: {exc.strerror or exc}") from None
    if need > have:
        raise UserError(f"model '{m.name}': its architecture needs {need} bytes of weights, but {m.weights} "
                        f"holds {have} (metadata and weights do not match)")


def install(src: Path, force: bool = False) -> tuple[ModelFiles, bool]:
    """Copy the model at `src` (a training --out folder, or its .safetensors/.json) into home_models(),
    each file atomically: (the installed model, whether it replaced other weights of that name).
    A bundled name cannot be taken; other weights of the same name are replaced only with `force`."""
    from .atomic import replace_atomically

    m = _by_path(Path(src))
    data = m.weights.read_bytes()
    fp = m.meta.get("fingerprint")
    if fp is not None and hashlib.sha256(data).hexdigest()[:8] != fp:
        raise UserError(f"{m.weights}: the weights do not match their metadata fingerprint (damaged?)")
    if any(b.name == m.name for b in bundled()):
        raise UserError(f"'{m.name}' is the name of a bundled model: train into another --out folder to install it")
    dest = home_models() / f"{m.name}.safetensors"
    replaced = False
    if dest.exists() and dest.resolve() != m.weights.resolve():
        old = _read_meta(dest.with_suffix(".json")) if dest.with_suffix(".json").exists() else {}
        if old.get("fingerprint") != fp:
            if not force:
                raise UserError(f"model '{m.name}' is already installed with other weights ({dest}): --force replaces "
                                "them (files written with the old weights will no longer decode)")
            replaced = True
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = m.weights.with_suffix(".json").read_bytes()
    replace_atomically(dest, lambda f: f.write(data), 0o644)
    replace_atomically(dest.with_suffix(".json"), lambda f: f.write(text), 0o644)
    return _from_weights(dest), replaced


def install_command(action: str, target: Path | None, force: bool = False) -> int:
    """`aecli models install DIR`: install, then say where and how to use it."""
    if action != "install":
        raise UserError(f"unknown action '{action}' of 'aecli models' (install DIR, or nothing to list the models)")
    if target is None:
        raise UserError("aecli models install DIR: give the folder the model was trained into")
    m, replaced = install(target, force)
    print(f"installed model '{m.name}' ({m.task}, fingerprint {m.meta.get('fingerprint')}) in {m.weights.parent}"
          f"{' (replacing other weights)' if replaced else ''}; use it by name: --model {m.name}", file=sys.stderr)
    return 0

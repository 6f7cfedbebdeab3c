"""Mutations of model files: the JSON document (keys dropped or retyped, sizes, levels, names,
fingerprints, whole documents that are no model's) and the `.safetensors` weights (tensors changed,
reshaped, renamed or retyped, and the file's bytes and header)."""

from __future__ import annotations

import hashlib
import json
import random

from .harness import flip_bits, weighted
from .seeds import ModelSeed


# --------------------------------------------------------------------------- JSON mutations: fn(rng, meta (a copy, changed in place), seed) -> None, or the document's bytes


ODD_VALUES = [None, True, False, 0, -1, 1, 2, 1.5, -0.0, 2**31, 2**63, 10**30, float("nan"), float("inf"), "", "x",
              "8", [], [1], [[]], {}, {"a": 1}, "ünïcødé", "a b"]
BIG_NUMBER = "__1e400__"  # written as the JSON number 1e400, which Python reads as inf
BOUNDARY_INTS = [0, -1, 1, 2, 3, 7, 4095, 4096, 4097, 1 << 16, 10**9, 2**64, BIG_NUMBER]


def _key_paths(meta: dict) -> list[tuple]:
    """Every key of the document and of its nested objects, and every list item below them."""
    out = []
    for k, v in meta.items():
        out.append((k,))
        if isinstance(v, dict):
            out += [(k, k2) for k2 in v] + [(k, k2, i) for k2, v2 in v.items() if isinstance(v2, list) for i in range(len(v2))]
        elif isinstance(v, list):
            out += [(k, i) for i in range(len(v))]
    return out


def _set(meta: dict, path: tuple, value=None, delete: bool = False) -> None:
    node = meta
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def j_drop(rng, meta, seed):
    _set(meta, rng.choice(_key_paths(meta)), delete=True)


def j_retype(rng, meta, seed):
    _set(meta, rng.choice(_key_paths(meta)), rng.choice(ODD_VALUES + [BIG_NUMBER]))


def j_numbers(rng, meta, seed):
    """The sizes an architecture claims: channel widths, levels, blocks, image shape, code size."""
    arch = meta.setdefault("architecture", {})
    if not isinstance(arch, dict):
        return
    key = rng.choice(["n", "m", "nh", "widths", "blocks", "in_ch", "latent", "shape", "hidden", "channels"])
    value = rng.choice(BOUNDARY_INTS)
    if key in ("widths", "shape", "hidden", "channels"):
        value = [rng.choice(BOUNDARY_INTS) for _ in range(rng.choice([0, 1, 2, 3, 7, 40]))]
    arch[key] = value


def j_levels(rng, meta, seed):
    """qualities, default_quality and lambdas out of step with each other or out of range."""
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else {}
    k = rng.randrange(6)
    if k == 0:
        meta["qualities"] = rng.choice([[], [0], [256], [1, 1], [1, 2, 3, 4], list(range(1, 300)), [3, 2, 1], ["1"]])
    elif k == 1:
        meta["default_quality"] = rng.choice([0, 4, 255, "2", None, 2.0])
    elif k == 2:
        arch["lambdas"] = rng.choice([[], [0.0], [-1.0], [float("nan")], [float("inf")], [1e-300] * 300, [0.01] * 2,
                                      [0.01] * 7, ["a"], 0.01])
    elif k == 3:
        meta["qualities"] = [rng.randrange(-2, 260) for _ in range(rng.randrange(0, 6))]
    elif k == 4:
        meta.pop("qualities", None)
    else:
        arch["lambdas"] = [rng.choice([0.001, 0.1, 10.0, BIG_NUMBER]) for _ in range(rng.randrange(1, 12))]


def j_kind(rng, meta, seed):
    arch = meta.get("architecture")
    if isinstance(arch, dict):
        arch["kind"] = rng.choice(["hyperprior", "checkerboard", "factorized", "unet", "dense", "vae", "conv",
                                   "transformer", "", None, 3])
        if rng.random() < 0.3:
            arch["nh"] = rng.choice([1, 8, 12, 64, 0, -1])


def j_name(rng, meta, seed):
    meta["name"] = rng.choice(["my model", "modèle", "a" * 65, "a" * 300, "", "../x", "x/y", ".", "-", "hpc", "hp",
                               "dn", 42, None, ["x"], "vector-hp", "fuzz-cb"])


def j_fingerprint(rng, meta, seed):
    fp = meta.get("fingerprint") if isinstance(meta.get("fingerprint"), str) else "00000000"
    k = rng.randrange(5)
    if k == 0:
        meta.pop("fingerprint", None)
    else:
        meta["fingerprint"] = [fp.upper(), fp[:7], fp + "0", "zzzzzzzz"][k - 1]


def j_task(rng, meta, seed):
    if rng.random() < 0.2:
        meta.pop("task", None)
    else:
        meta["task"] = rng.choice(["codec", "denoise", "autoencoder", "?", "", 1])


def j_document(rng, meta, seed) -> bytes:
    """A whole document that is not a model's JSON object."""
    text = json.dumps(meta)
    k = rng.randrange(10)
    if k == 0:
        return json.dumps(rng.choice([[1, 2], "text", 3, None, [meta]])).encode()
    if k == 1:
        depth = rng.choice([100, 1000, 100_000])
        return ("[" * depth + "]" * depth).encode()
    if k == 2:
        return ('{"name": "x", "training": ' + "{\"a\": " * 50_000 + "1" + "}" * 50_000 + "}").encode()
    if k == 3:
        return (text[:-1] + ', "pad": "' + "x" * rng.choice([1 << 20, 3 << 20]) + '"}').encode()  # over 1 MiB
    if k == 4:
        return text.encode()[: rng.randrange(len(text))]
    if k == 5:
        return b"\xef\xbb\xbf" + text.encode()  # a byte-order mark
    if k == 6:
        return text.encode().replace(b'"', b"\xff", 1)
    if k == 7:
        return text.replace("{", '{"name": 1, ', 1).encode()  # duplicate key
    if k == 8:
        return b""
    return text.replace(": 8", ": " + "9" * 5000, 1).encode()  # an integer of 5000 digits


JSON_MUTATIONS = {
    "json_drop": (j_drop, 3), "json_retype": (j_retype, 4), "json_numbers": (j_numbers, 4), "json_levels": (j_levels, 3),
    "json_kind": (j_kind, 2), "json_name": (j_name, 2), "json_fingerprint": (j_fingerprint, 2), "json_task": (j_task, 1),
    "json_document": (j_document, 2),
}


# --------------------------------------------------------------------------- weights mutations: fn(rng, tensors) changes the dict of tensors in place; b_*(rng, data) -> bytes


def _pick(rng, tensors: dict, prefix: str = "", floating: bool | None = None):
    keys = [k for k, v in tensors.items() if k.startswith(prefix) and (floating is None or v.is_floating_point() == floating)]
    return rng.choice(keys) if keys else None


def w_tables(rng, t):
    """Probability tables: all-zero, a zero or negative count, huge counts, lengths and offsets out of step."""
    import torch

    which = rng.choice(["y", "z"])
    pmf, lens, off = (f"tables.{which}.{x}" for x in ("pmf", "len", "offset"))
    if pmf not in t:
        which, pmf, lens, off = "y", "tables.y.pmf", "tables.y.len", "tables.y.offset"
    k = rng.randrange(7)
    if k == 0:
        t[pmf] = torch.zeros_like(t[pmf])
    elif k == 1:
        t[pmf][rng.randrange(len(t[pmf]))] = rng.choice([0, -1, -(2**31)])
    elif k == 2:
        t[pmf] = torch.full_like(t[pmf], 2**31 - 1)
    elif k == 3:
        t[lens][rng.randrange(len(t[lens]))] += rng.choice([-1, 1, -1000, 2**20])
    elif k == 4:
        t[off] = torch.full_like(t[off], rng.choice([2**31 - 1, -(2**31), 2**20]))
    elif k == 5:
        t[lens] = torch.cat([t[lens], t[lens][:1]]) if rng.random() < 0.5 else t[lens][:-1].clone()
    else:
        t[lens] = torch.full_like(t[lens], 1)


def w_nonfinite(rng, t):
    key = _pick(rng, t, floating=True)
    if key is not None and t[key].numel():
        t[key].view(-1)[rng.randrange(t[key].numel())] = rng.choice([float("nan"), float("inf"), float("-inf")])


def w_huge(rng, t):
    key = _pick(rng, t, floating=True)
    if key is not None:
        t[key] = t[key] * rng.choice([1e30, -1e30, 1e-30, 0.0])


def w_dtype(rng, t):
    import torch

    key = _pick(rng, t)
    if key is not None:
        t[key] = t[key].to(rng.choice([torch.float64, torch.float16, torch.int8, torch.uint8, torch.bool, torch.int64,
                                       torch.int32, torch.float32]))


def w_shape(rng, t):
    key = _pick(rng, t)
    if key is None:
        return
    v = t[key]
    k = rng.randrange(5)
    if k == 0 and v.dim() and v.shape[0] > 1:
        t[key] = v[: v.shape[0] // 2].clone()
    elif k == 1:
        t[key] = v.reshape(-1).clone()
    elif k == 2:
        t[key] = v.unsqueeze(0).clone()
    elif k == 3 and v.dim() >= 2:
        t[key] = v.transpose(0, 1).contiguous()
    else:
        t[key] = v.reshape(-1)[:0].clone()  # empty


def w_keys(rng, t):
    """A tensor dropped, renamed, added, or two swapped."""
    import torch

    key = _pick(rng, t)
    k = rng.randrange(4)
    if k == 0:
        t.pop(key)
    elif k == 1:
        t[key + rng.choice(["x", ".0", "_"])] = t.pop(key)
    elif k == 2:
        t[rng.choice(["extra", "tables.q.pmf", "int.h_s.9.weight", "g_a.99.weight"])] = torch.ones(rng.choice([0, 1, 7]))
    else:
        other = _pick(rng, t)
        t[key], t[other] = t[other], t[key]


def w_integers(rng, t):
    """The integer networks and thresholds: weights past the exact range, shifts and biases out of range,
    thresholds out of order."""
    import torch

    key = _pick(rng, t, prefix=rng.choice(["int.", "tables.y.thresholds"]))
    if key is None:
        return
    v = t[key]
    if key.endswith("shift"):
        t[key] = torch.full_like(v, rng.choice([2**31 - 1, -(2**31), 64, 65, -65, 1000]))
    elif key.endswith("thresholds"):
        t[key] = v.flip(0).contiguous() if rng.random() < 0.5 else v[:0].clone()
    elif v.numel():
        v.view(-1)[rng.randrange(v.numel())] = rng.choice([2**15, -(2**15) - 1, 2**30, 2**62 if v.dtype == torch.int64 else 2**31 - 1])


def b_truncate(rng, data):
    return data[: rng.randrange(len(data))]


def b_header(rng, data):
    """The safetensors header: its length field, or bytes inside its JSON."""
    out = bytearray(data)
    if rng.random() < 0.4:
        out[:8] = rng.choice([0, 1, 2**63, len(data), 2**32, int.from_bytes(data[:8], "little") + rng.choice([-1, 1])]
                             ).to_bytes(8, "little")
    else:
        n = min(int.from_bytes(data[:8], "little"), len(data) - 8)
        for _ in range(rng.choice([1, 2, 8])):
            out[8 + rng.randrange(max(1, n))] = rng.randrange(256)
    return bytes(out)


def b_claims(rng, data):
    """A header that claims huge tensors (or offsets past the end) over the same data."""
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8:8 + n])
    key = rng.choice([k for k in head if k != "__metadata__"])
    entry = head[key]
    k = rng.randrange(3)
    if k == 0:
        entry["shape"] = [rng.choice([2**20, 2**31, 2**40]), rng.choice([1, 2**20])]
    elif k == 1:
        entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][0] + rng.choice([2**40, 2**31, 7])]
    else:
        entry["dtype"] = rng.choice(["F128", "X", "BOOL", "F8_E4M3", "I16"])
    raw = json.dumps(head).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + n:]


def b_bits(rng, data):
    return flip_bits(rng, data, rng.choice([1, 8, 64]))


TENSOR_MUTATIONS = {
    "weights_tables": (w_tables, 5), "weights_nonfinite": (w_nonfinite, 3), "weights_huge": (w_huge, 2),
    "weights_dtype": (w_dtype, 3), "weights_shape": (w_shape, 4), "weights_keys": (w_keys, 3),
    "weights_integers": (w_integers, 3),
}
BYTE_MUTATIONS = {"bytes_truncate": (b_truncate, 1), "bytes_header": (b_header, 2), "bytes_claims": (b_claims, 2),
                  "bytes_bits": (b_bits, 2)}


# --------------------------------------------------------------------------- one mutated model


def _dump_json(meta: dict) -> bytes:
    return json.dumps(meta).replace(f'"{BIG_NUMBER}"', "1e400").encode()


def _mutate_weights(rng, data: bytes) -> tuple[bytes, str]:
    if rng.random() < 0.25:
        tag = weighted(rng, BYTE_MUTATIONS)
        return BYTE_MUTATIONS[tag][0](rng, data), tag
    from safetensors.torch import load, save

    tensors = {k: v.clone() for k, v in load(data).items()}
    codec = "tables.y.pmf" in tensors  # (a denoiser has neither tables nor integer networks)
    table = {k: v for k, v in TENSOR_MUTATIONS.items() if codec or k not in ("weights_tables", "weights_integers")}
    tag = weighted(rng, table)
    table[tag][0](rng, tensors)
    return save({k: v.contiguous() for k, v in tensors.items()}), tag


def mutate_model(rng: random.Random, seeds: list[ModelSeed]) -> tuple[int, bytes, bytes, str]:
    """One mutated model: (seed index, JSON bytes, weights bytes, mutation tag)."""
    import copy

    si = rng.randrange(len(seeds))
    seed = seeds[si]
    meta, weights, tags = copy.deepcopy(seed.meta), seed.weights, []
    k = rng.random()
    if k < 0.55:  # the weights (and, most of the time, a fingerprint that matches them)
        weights, tag = _mutate_weights(rng, weights)
        tags.append(tag)
        if rng.random() < 0.85:
            meta["fingerprint"] = hashlib.sha256(weights).hexdigest()[:8]
    if k >= 0.45 or not tags:  # the JSON
        tag = weighted(rng, JSON_MUTATIONS)
        tags.append(tag)
        doc = JSON_MUTATIONS[tag][0](rng, meta, seed)
        return si, doc if isinstance(doc, bytes) else _dump_json(meta), weights, "+".join(tags)
    return si, _dump_json(meta), weights, "+".join(tags)

"""`aecli info` and `aecli models`: read metadata only, never import torch."""

from __future__ import annotations

import json
from pathlib import Path

from . import format as latformat
from . import registry
from .errors import UserError
from .imageio import read_bytes


def lat_info(src: str) -> dict:
    data = read_bytes(src)
    try:
        lat = latformat.unpack(data)
    except latformat.FormatError as exc:
        raise UserError(f"{src}: {exc}") from None
    d = latformat.describe(lat)
    d["file"] = src
    d["integrity"] = "ok (CRC-32 verified)"
    try:
        m = registry.find_by_name(lat.model, lat.fingerprint, "codec")
        d["model_available"] = True
        d["model_weights"] = str(m.weights)
    except UserError as exc:
        d["model_available"] = False
        d["model_problem"] = str(exc)
    return d


def format_info(d: dict) -> str:
    lines = [
        f"{d['file']}: .lat v{d['version']}, {d['width']}x{d['height']} {d['mode']}",
        f"  model     {d['model']} (fingerprint {d['fingerprint']}){'' if d['model_available'] else '  [NOT INSTALLED]'}",
        f"  quality   {d['quality']}"
        + (f" (coded at {d['coded_width']}x{d['coded_height']}, scale {d['coded_scale']:g})" if d["coded_scale"] != 1 else ""),
        f"  size      {d['file_bytes']} bytes ({d['header_bytes']} header), {d['bpp']:.4f} bpp",
        f"  streams   {', '.join(str(n) for n in d['stream_bytes'])} bytes",
        f"  integrity {d['integrity']}",
    ]
    if not d["model_available"]:
        lines.append(f"  note      {d['model_problem']}")
    return "\n".join(lines)


def model_rows(extra: list[Path] = ()) -> list[dict]:
    for d in extra:
        if not Path(d).exists():
            raise UserError(f"model folder not found: {d}")
        if not Path(d).is_dir():
            raise UserError(f"--path {d} is not a folder")
    rows = []
    for m in registry.all_models(list(extra)):
        meta = m.meta
        train = meta.get("training", {})
        rows.append({
            "name": m.name,
            "task": m.task,
            "kind": meta.get("architecture", {}).get("kind", ""),
            "qualities": meta.get("qualities", []),
            "default_quality": meta.get("default_quality"),
            "fingerprint": meta.get("fingerprint", ""),
            "bundled": m.bundled,
            "decode_only": m.decode_only,
            "path": str(m.weights),
            "bytes": m.weights.stat().st_size,
            "steps": train.get("steps"),
            "hardware": train.get("hardware"),
        })
    return rows


def format_models(rows: list[dict]) -> str:
    if not rows:
        return "no models found"
    out = [f"{'name':<14} {'task':<11} {'kind':<12} {'qualities':<10} {'fingerprint':<11} {'steps':>8}  source"]
    for r in rows:
        qs = r["qualities"]
        qtxt = f"{min(qs)}..{max(qs)}" if len(qs) > 1 else (str(qs[0]) if qs else "-")
        src = "bundled" if r["bundled"] else r["path"]
        if r.get("decode_only"):
            src += " (older weights: decodes its files, does not write)"
        out.append(f"{r['name']:<14} {r['task']:<11} {r['kind']:<12} {qtxt:<10} {r['fingerprint']:<11} {str(r['steps'] or '-'):>8}  {src}")
    return "\n".join(out)


def to_json(obj) -> str:
    return json.dumps(obj, indent=2)

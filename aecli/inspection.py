"""`aecli info` and `aecli models`: read metadata only, never import torch."""

from __future__ import annotations

import json
from pathlib import Path

from . import format as latformat
from . import registry
from .errors import UserError
from .images.decode import PIXELS_ENV, pixels_from_env, read_bytes


# What decoding costs, per padded megapixel a file claims, measured with the default model (hpc) on
# the 2-core CPU of docs/perf.md: a 27-byte file claiming 8192x8192 (the default limit) decodes in
# 34 s with 1.44 GB peak memory as RGB (2.07 GB as L), 2048x2048 in 4.8 s with 0.77 GB; --exact takes
# about 3x the time (README, "Safety").  Rough figures for `aecli info`, not a promise.
DECODE_SECONDS_PER_MPX = 0.5
DECODE_BASE_MB, DECODE_MB_PER_MPX = 600, 22


def decode_cost(lat: latformat.LatFile, align: int) -> dict:
    """What decoding `lat` takes: the padded size the decoder works at, the decode limit in force
    (--max-pixels aside) and a rough estimate of time and memory."""
    cw, ch = latformat.coded_size(lat.width, lat.height, lat.scale)
    pw, ph = -(-cw // align) * align, -(-ch // align) * align
    env = pixels_from_env()
    limit = latformat.DEFAULT_DECODE_PIXELS if env is None else env
    mpx = pw * ph / 1e6
    return {
        "padded_width": pw, "padded_height": ph, "pixels": pw * ph,
        "limit": limit, "limit_from": "default" if env is None else PIXELS_ENV,
        "within_limit": limit == 0 or pw * ph <= limit,
        "estimated_seconds": round(DECODE_SECONDS_PER_MPX * mpx, 1),
        "estimated_peak_mb": round(DECODE_BASE_MB + DECODE_MB_PER_MPX * mpx),
    }


def lat_info(src: str) -> dict:
    data = read_bytes(src)
    try:
        lat = latformat.unpack(data)
    except latformat.FormatError as exc:
        raise UserError(f"{src}: {exc}") from None
    d = latformat.describe(lat)
    d.setdefault("metadata", {})  # {kind: bytes} of what the file carries: icc, exif, xmp (empty: none)
    d["file"] = src
    d["integrity"] = "ok (CRC-32 verified)"
    if lat.kind == "fitted":
        return _fitted_info(lat, d)
    kind = ""
    try:
        m = registry.find_by_name(lat.model, lat.fingerprint, "codec")
        d["model_available"] = True
        d["model_weights"] = str(m.weights)
        kind = m.meta.get("architecture", {}).get("kind", "")
    except UserError as exc:
        d["model_available"] = False
        d["model_problem"] = str(exc)
    d["decode"] = decode_cost(lat, 16 if kind == "factorized" else 64)  # (an unknown model: the larger alignment)
    return d


def _fitted_info(lat: latformat.LatFile, d: dict) -> dict:
    """A fitted file carries its own networks: show their structure instead of a model."""
    from .codec.fitted import header

    d["model_available"] = True
    try:
        s = header.unpack(lat.streams[0]) if lat.streams else None
    except header.HeaderError as exc:
        s, d["fitted_problem"] = None, str(exc)
    if s is None:
        d.setdefault("fitted_problem", "corrupt fitted header: no structure stream")
    else:
        d["fitted"] = header.describe(s, lat.width, lat.height)
    return d


def _decode_line(c: dict) -> str:
    size = f"{c['padded_width']}x{c['padded_height']} padded = {c['pixels'] / 1e6:.1f} MP"
    if c["limit"] == 0:
        return f"{size}, no decode limit ({PIXELS_ENV}=0); about {c['estimated_seconds']:g} s and " \
               f"{c['estimated_peak_mb'] / 1000:.1f} GB on a 2-core CPU"
    limit = f"the limit of {c['limit'] / 1e6:.1f} MP ({c['limit_from']})"
    if not c["within_limit"]:
        return f"{size}, over {limit}: refused unless --max-pixels allows it"
    return (f"{size}, within {limit}; about {c['estimated_seconds']:g} s and up to "
            f"{c['estimated_peak_mb'] / 1000:.1f} GB on a 2-core CPU")


_META_NAMES = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP"}


def _metadata_line(meta: dict) -> str:
    if not meta:
        return "none"
    return ", ".join(f"{_META_NAMES.get(k, k)} ({n} bytes)" for k, n in meta.items()) + " (restored on decompress)"


def format_info(d: dict) -> str:
    if d.get("kind") == "fitted":
        return _format_fitted(d)
    lines = [
        f"{d['file']}: .lat v{d['version']}, {d['width']}x{d['height']} {d['mode']}",
        f"  model     {d['model']} (fingerprint {d['fingerprint']}){'' if d['model_available'] else '  [NOT INSTALLED]'}",
        f"  quality   {d['quality']}"
        + (f" (coded at {d['coded_width']}x{d['coded_height']}, scale {d['coded_scale']:g})" if d["coded_scale"] != 1 else ""),
        f"  size      {d['file_bytes']} bytes ({d['header_bytes']} header), {d['bpp']:.4f} bpp",
        f"  streams   {', '.join(str(n) for n in d['stream_bytes'])} bytes",
        f"  metadata  {_metadata_line(d.get('metadata') or {})}",
        f"  integrity {d['integrity']}",
        f"  decoding  {_decode_line(d['decode'])}",
    ]
    if not d["model_available"]:
        lines.append(f"  note      {d['model_problem']}")
    return "\n".join(lines)


def _format_fitted(d: dict) -> str:
    f = d.get("fitted")
    lines = [
        f"{d['file']}: .lat v{d['version']}, {d['width']}x{d['height']} {d['mode']}",
        "  kind      fitted (networks fitted to this image travel in the file)",
        f"  quality   {d['quality']}",
        f"  size      {d['file_bytes']} bytes ({d['header_bytes']} header), {d['bpp']:.4f} bpp",
        f"  streams   {', '.join(str(n) for n in d['stream_bytes'])} bytes",
        f"  integrity {d['integrity']}",
    ]
    if f:
        lines += [f"  structure version {f['structure_version']}: {f['structure']}",
                  f"  latents   {f['latents']} in {f['levels']} planes",
                  f"  networks  ARM {f['arm']}, synthesis {f['synthesis']}: {f['parameters']} parameters, "
                  f"about {f['decode_macs_per_pixel']} multiply-adds per pixel to decode"]
    else:
        lines.append(f"  note      {d['fitted_problem']}")
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
            "default_for": _default_for(m),
            "fingerprint": meta.get("fingerprint") or "",
            "bundled": m.bundled,
            "decode_only": m.decode_only,
            "path": str(m.weights),
            "bytes": _size(m.weights),
            "steps": train.get("steps"),
            "hardware": train.get("hardware"),
        })
    return rows


def _default_for(m: registry.ModelFiles) -> list[str]:
    """The commands that use this model when none is named (a bundled model's name in
    registry.DEFAULTS or registry.SAMPLER; older decode-only weights never)."""
    if not m.bundled or m.decode_only:
        return []
    uses = {"codec": ["compress", "compare", "eval"], "denoise": ["denoise"],
            "autoencoder": ["embed", "score", "reconstruct"]}
    out = list(uses.get(m.task, [])) if registry.DEFAULTS.get(m.task) == m.name else []
    if m.name == registry.SAMPLER:
        out.append("sample")
    return out


def _size(p: Path) -> int | None:
    """A file's size, None when it cannot be read (a dangling link must not break the listing)."""
    try:
        return p.stat().st_size
    except OSError:
        return None


def format_models(rows: list[dict]) -> str:
    if not rows:
        return "no models found"
    out = [f"  {'name':<14} {'task':<11} {'kind':<12} {'qualities':<16} {'fingerprint':<11} {'steps':>8}  source"]
    for r in rows:
        qs = r["qualities"]
        qtxt = f"{min(qs)}..{max(qs)}" if len(qs) > 1 else (str(qs[0]) if qs else "-")
        if r.get("default_quality") is not None and len(qs) > 1:
            qtxt += f" (*{r['default_quality']})"
        src = "bundled" if r["bundled"] else r["path"]
        if r.get("decode_only"):
            src += " (older weights: decodes its files, does not write)"
        if r.get("default_for"):
            src += f"; default of {', '.join(r['default_for'])}"
        mark = "*" if r.get("default_for") else " "
        out.append(f"{mark} {r['name']:<14} {r['task']:<11} {r['kind']:<12} {qtxt:<16} {r['fingerprint']:<11} "
                   f"{str(r['steps'] or '-'):>8}  {src}")
    out.append("* default model of its commands; (*N): default quality")
    return "\n".join(out)


def to_json(obj) -> str:
    return json.dumps(obj, indent=2)

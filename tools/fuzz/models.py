"""--target model: mutated model files through what the commands do with a model.

A model is two files that anyone can put in $AECLI_MODEL_PATH or name with --model: its JSON and
its .safetensors weights.  Each case mutates one seed model's JSON, its weights, or both (the
JSON's fingerprint made to match the mutated weights most of the time, so that the mutation gets
past that check), writes them as m.json + m.safetensors in one folder, and runs what the commands
do with a model there: list it (`aecli models`, `aecli info` of a file that names it), load it by
path (`--model DIR/m.safetensors`), then use it: decode a file that names it, and compress
and decode an image (codec), or denoise an image (denoiser).  The expected failure of each stage
is a UserError (one line); anything else is a crash.  The file the seed model wrote is made to
name the mutated model (its name and fingerprint) so that decoding by name reaches its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aecli import format as latformat  # (stdlib only, cheap)

from .harness import KiB, MiB, Findings, decoder_expected, each_case, guarded, instrumented, message_class, on_alarm
from .model_mutations import mutate_model
from .seeds import ModelSeed, picture

MODEL_STAGES = ("list", "load", "decode", "encode")


# --------------------------------------------------------------------------- the stages


def _reset_model_caches() -> None:
    from aecli import cache, registry

    cache.MODELS.clear()
    for name in ("_warned", "skipped"):  # (getattr: the harness also runs on versions without them)
        getattr(registry, name, set()).clear()


def _list_stage(folder: Path) -> str:
    """What `aecli models` and `aecli info FILE` do with the model folder in $AECLI_MODEL_PATH."""
    from aecli import inspection

    text = inspection.format_models(inspection.model_rows())
    if (folder / "seed.lat").exists():
        text += inspection.format_info(inspection.lat_info(str(folder / "seed.lat")))
    return text


def _load_stage(seed: ModelSeed, spec: str):
    if seed.meta["task"] == "codec":
        from aecli.codec.api import load_codec

        return load_codec(spec)
    from aecli.denoise.api import load_denoiser

    return load_denoiser(spec)


def _decode_stage(seed: ModelSeed, lat_bytes: bytes | None, spec: str) -> int:
    """Decode a file that names the model (found by name and fingerprint, as `aecli decompress` does
    without --model); a denoiser denoises an image without a noise level instead."""
    from aecli.codec.api import DEFAULT_MAX_PIXELS, codec_for
    from aecli.images.encode import encode_image

    if lat_bytes is None:
        out, _ = _load_stage(seed, spec).denoise(_fuzz_image(), None)
        return len(encode_image(out, "png"))
    lat = latformat.unpack(lat_bytes)
    return len(encode_image(codec_for(lat, None).decompress(lat, max_pixels=DEFAULT_MAX_PIXELS), "png"))


def _encode_stage(seed: ModelSeed, spec: str) -> int:
    """Compress an image with --model and decode it back; a denoiser denoises at sigma 25 (where it
    takes a noise level) or blind."""
    from aecli.codec.api import DEFAULT_MAX_PIXELS
    from aecli.images.encode import encode_image

    model = _load_stage(seed, spec)
    if seed.meta["task"] != "codec":
        out, _ = model.denoise(_fuzz_image(), 25.0 if model.model.noise_map else None)
        return len(encode_image(out, "png"))
    data = model.compress(_fuzz_image(), None, scale=8)
    return len(encode_image(model.decompress(latformat.unpack(data), max_pixels=DEFAULT_MAX_PIXELS), "png"))


def _fuzz_image():
    import numpy as np

    from aecli.images.image import Image

    return Image(picture(16, 20, 3, "noise", np.random.default_rng(3)), None, "RGB", 8)


def _case_lat(seed: ModelSeed, json_bytes: bytes) -> bytes | None:
    """The seed model's file, naming the mutated model (its name and fingerprint, where a file can hold
    them), so that decoding by name reaches the mutated weights."""
    from dataclasses import replace

    if seed.lat is None:
        return None
    try:
        meta = json.loads(json_bytes)
        lat = latformat.unpack(seed.lat)
        fp = bytes.fromhex(meta["fingerprint"])
        return latformat.pack(replace(lat, model=meta["name"], fingerprint=fp))
    except Exception:  # noqa: BLE001 - a JSON that cannot name a file: the file keeps the seed's name
        return seed.lat


# --------------------------------------------------------------------------- running one case


def model_bound(json_bytes: bytes, weights: bytes) -> int:
    """Traced allocations one stage may peak at: 16 times the model's files, plus 32 MiB."""
    return 16 * (len(json_bytes) + len(weights)) + 32 * MiB


def run_model_case(seed: ModelSeed, json_bytes: bytes, weights: bytes, folder: Path, time_limit: float,
                   use_alarm: bool) -> dict:
    """The three stages on one mutated model written to `folder`: {stage: Outcome or None}."""
    _reset_model_caches()
    (folder / "m.json").write_bytes(json_bytes)
    (folder / "m.safetensors").write_bytes(weights)
    spec = str(folder / "m.safetensors")
    lat = _case_lat(seed, json_bytes)
    if lat is not None:
        (folder / "seed.lat").write_bytes(lat)
    else:
        (folder / "seed.lat").unlink(missing_ok=True)
    expected = decoder_expected  # UserError: the one line the CLI prints
    out = {"list": guarded(lambda: _list_stage(folder), time_limit, expected, use_alarm)}
    out["load"] = guarded(lambda: _load_stage(seed, spec), time_limit, expected, use_alarm)
    loaded = out["load"].ok
    out["decode"] = guarded(lambda: _decode_stage(seed, lat, spec), time_limit, expected, use_alarm) if loaded else None
    out["encode"] = guarded(lambda: _encode_stage(seed, spec), time_limit, expected, use_alarm) if loaded else None
    _reset_model_caches()
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class ModelStats(Findings):
    cases: int = 0
    outcomes: dict = field(default_factory=lambda: {s: Counter() for s in MODEL_STAGES})
    rejected: dict = field(default_factory=lambda: {s: Counter() for s in MODEL_STAGES})
    peak_ratio_max: float = 0.0
    time_max: dict = field(default_factory=lambda: {s: 0.0 for s in MODEL_STAGES})


def _save_model_case(kind: str, entry: dict, json_bytes: bytes, weights: bytes, crash_dir: Path | None) -> dict:
    digest = hashlib.sha1(json_bytes + weights).hexdigest()[:16]
    entry = dict(entry, sha1=digest, json_bytes=len(json_bytes), weights_bytes=len(weights))
    if crash_dir is not None:
        d = Path(crash_dir) / f"model-{kind}-{digest}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "m.json").write_bytes(json_bytes)
        (d / "m.safetensors").write_bytes(weights)
        entry["dir"] = str(d)
    return entry


_CASE_DIR = re.compile(r"/\S*?aecli-fuzz-model-[^/\s]+")


def _account_model(st: ModelStats, i: int, tag: str, seed: ModelSeed, res: dict, json_bytes: bytes, weights: bytes,
                   crash_dir, rss: tuple[int, int]) -> None:
    st.cases += 1
    m = st.by_mutation.setdefault(tag.split("+")[0], {"cases": 0, "loaded": 0, "decoded": 0, "encoded": 0})
    m["cases"] += 1
    bound = model_bound(json_bytes, weights)
    base = {"case": i, "mutation": tag, "seed_model": seed.name}
    for stage in MODEL_STAGES:
        o = res[stage]
        if o is None:
            continue
        kind = "hang" if o.hang else "ok" if o.ok else "rejected" if o.expected else "crash"
        st.outcomes[stage][kind] += 1
        st.time_max[stage] = max(st.time_max[stage], o.elapsed)
        st.peak_ratio_max = max(st.peak_ratio_max, o.peak / bound)
        if kind == "rejected":
            st.rejected[stage][message_class(_CASE_DIR.sub("<dir>", o.message))] += 1
        elif kind in ("crash", "hang"):
            entry = dict(base, stage=stage, error=o.error_type, message=o.message, where=o.where, seconds=round(o.elapsed, 3))
            (st.crashes if kind == "crash" else st.hangs).append(_save_model_case(kind, entry, json_bytes, weights, crash_dir))
            if kind == "crash":
                st.crash_signatures[f"{stage}: {o.error_type} at {o.where}"] += 1
        if o.peak > bound:
            st.over_alloc.append(_save_model_case("alloc", dict(base, stage=stage, peak=o.peak, bound=bound),
                                                  json_bytes, weights, crash_dir))
        if stage != "list" and kind == "ok":
            m[{"load": "loaded", "decode": "decoded", "encode": "encoded"}[stage]] += 1
    if rss[1] > rss[0]:  # this case set a new peak RSS above the allowance
        st.rss_over.append(dict(base, rss_kb=rss[1], bound_kb=rss[0]))


def fuzz_models(seeds: list[ModelSeed], cases: int, seed: int = 0, *, time_limit: float = 10.0, crash_dir: Path | None = None,
                progress: bool | None = False, start: int = 0, rss_slack: int = 512 * MiB) -> dict:
    """Run `cases` mutated models (case i uses random.Random(f"model:{seed}:{i}")); return the summary."""
    with instrumented() as use_alarm, _model_folder() as folder:
        st = ModelStats()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        status = lambda: f"crashes {len(st.crashes)}  hangs {len(st.hangs)}  over-alloc {len(st.over_alloc)}"  # noqa: E731
        for i, rng in each_case(progress, "fuzz models", cases, start, f"model:{seed}:", 100, status):
            si, json_bytes, weights, tag = mutate_model(rng, seeds)
            res = run_model_case(seeds[si], json_bytes, weights, folder, time_limit, use_alarm)
            allowance = rss_start + (4 * model_bound(json_bytes, weights) + rss_slack) // KiB
            rss = (allowance, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            _account_model(st, i, tag, seeds[si], res, json_bytes, weights, crash_dir, rss)
    return _model_summary(st, seeds, cases, seed, time_limit, time.perf_counter() - t0, rss_start)


@contextmanager
def _model_folder():
    """A fresh folder that is the only one in $AECLI_MODEL_PATH, with the registry's warnings muted (a
    skipped model's warning, once per case, would flood the terminal)."""
    from aecli import registry

    folder = Path(tempfile.mkdtemp(prefix="aecli-fuzz-model-"))
    saved_path, saved_warn = os.environ.get("AECLI_MODEL_PATH"), getattr(registry, "_warn", None)
    os.environ["AECLI_MODEL_PATH"] = str(folder)
    registry._warn = lambda msg: None
    try:
        yield folder
    finally:
        if saved_warn is not None:
            registry._warn = saved_warn
        if saved_path is None:
            os.environ.pop("AECLI_MODEL_PATH", None)
        else:
            os.environ["AECLI_MODEL_PATH"] = saved_path
        shutil.rmtree(folder, ignore_errors=True)


def _model_summary(st: ModelStats, seeds, cases, seed, time_limit, wall, rss_start) -> dict:
    return {
        "target": "model",
        "cases": st.cases,
        "seed": seed,
        "time_limit_s": time_limit,
        "wall_s": round(wall, 1),
        "cases_per_s": round(st.cases / wall, 1) if wall else None,
        "outcomes": {s: dict(c) for s, c in st.outcomes.items()},
        "rejected_by_message": {s: dict(c.most_common(25)) for s, c in st.rejected.items()},
        **st.summary(),
        "memory": {
            "stage_bound": "16 x (JSON + weights bytes) + 32 MiB of traced allocations; peak RSS may not rise "
                           "above the start + 4 x that + 512 MiB",
            "peak_over_bound_max": round(st.peak_ratio_max, 4),
            "rss_peak_at_start_mb": round(rss_start / KiB, 1),
            "rss_peak_at_end_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KiB, 1),
        },
        "timing_max_s": {s: round(v, 3) for s, v in st.time_max.items()},
        "seed_models": [{"name": s.name, "task": s.meta["task"], "kind": s.meta["architecture"].get("kind", "unet"),
                         "weights_bytes": len(s.weights), "fingerprint": s.meta["fingerprint"]} for s in seeds],
    }


# --------------------------------------------------------------------------- replays


def replay_models(dirs: list[Path], seeds: list[ModelSeed], time_limit: float) -> int:
    """Run saved model cases (folders with m.json and m.safetensors) through the stages, with each seed
    model's role (task, file) in turn; print what happened."""
    bad = 0
    signal.signal(signal.SIGALRM, on_alarm)
    for d in dirs:
        for seed in seeds:
            with _model_folder() as folder:
                res = run_model_case(seed, (d / "m.json").read_bytes(), (d / "m.safetensors").read_bytes(), folder,
                                     time_limit, True)
            for stage, o in res.items():
                if o is None:
                    continue
                verdict = "HANG" if o.hang else "ok" if o.ok else "rejected" if o.expected else "CRASH"
                bad += verdict in ("HANG", "CRASH")
                print(f"{d} as {seed.name}: {stage}: {verdict} {o.error_type} {o.message} {o.where} ({o.elapsed:.3f} s)")
    return 1 if bad else 0

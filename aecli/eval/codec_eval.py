"""Evaluate the codec: `aecli compare` (same-size comparison) and `aecli eval` (RD sweep).

Sizes are always real file sizes: our .lat files (header and CRC included) and the bytes
Pillow's encoders write.  Each RD point is the mean over images of per-image values.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .. import format as latformat
from ..atomic import write_output
from ..errors import UserError
from ..images.decode import read_image
from ..images.image import Image
from ..images.walk import walk_images
from ..progress import progress_bar
from . import rd
from ..metrics import ms_ssim, psnr

# Quality sweeps of the classical codecs, spanning about 0.1 .. 2 bpp on Kodak.
BASELINE_QUALITIES = {
    "jpeg": [3, 5, 8, 12, 20, 30, 45, 60, 75, 85],
    "webp": [0, 5, 15, 30, 45, 60, 75, 85],
    "avif": [10, 20, 30, 40, 50, 60, 70, 80],
}
LABELS = {"jpeg": "JPEG (Pillow, optimize)", "webp": "WebP (Pillow, method 6)", "avif": "AVIF (Pillow, speed 6)"}


def _inputs(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += walk_images(p)
        elif p.exists():
            files.append(p)
        else:
            raise UserError(f"input not found: {p}")
    if not files:
        raise UserError(f"no images found under {', '.join(paths)}" if paths else "no images given")
    return files


def _read_or_report(f: Path, files: list[Path]) -> Image | None:
    """The image, or None after a one-line error on stderr when it cannot be read and other files
    remain to be done (a single input's error is raised)."""
    try:
        return read_image(f)
    except UserError as exc:
        if len(files) == 1:
            raise
        print(f"aecli: error: {exc}", file=sys.stderr, flush=True)
        return None


def compare(paths: list[str], model: str | None = None, quality: int | None = None,
            effort: int = 0) -> tuple[list[dict], int]:
    """Per image: our file at `quality` (encoded at `effort`), and JPEG / WebP given the same number of bytes.
    Returns the rows and the number of unreadable files (each reported on stderr and skipped)."""
    from ..codec.api import load_codec
    from ..codec.fitted import files as fitted
    from ..codec.refine import effort as effort_level

    if fitted.is_fitted(model):
        raise UserError("aecli compare does not run the fitted codec (one fit per image and quality); "
                        "use aecli eval --model fit, or aecli compress --model fit")
    effort_level(effort)  # a UserError for a level that does not exist
    codec = load_codec(model)
    rows = []
    failed = 0
    files = _inputs(paths)
    with progress_bar() as bar:
        job = bar.add_task("compare", total=len(files), stats="")
        for f in files:
            img = _read_or_report(f, files)
            if img is None:
                failed += 1
                bar.advance(job)
                continue
            h, w = img.pixels.shape[:2]
            t0 = time.perf_counter()
            data = codec.compress(img, quality, effort=effort)
            t1 = time.perf_counter()
            back = codec.decompress(latformat.unpack(data))
            t2 = time.perf_counter()
            row = {"image": f.name, "size": f"{w}x{h}", "quality": latformat.unpack(data).quality,
                   "bytes": len(data), "bpp": 8 * len(data) / (w * h), "psnr": psnr(img.pixels, back.pixels),
                   "encode_s": t1 - t0, "decode_s": t2 - t1}
            for name in ("jpeg", "webp"):
                try:
                    q, raw = rd.find_quality(img.rgb, name, len(data))
                    dec = rd.decode(raw)
                    row[f"{name}_bytes"] = len(raw)
                    row[f"{name}_psnr"] = psnr(img.rgb, dec)
                except ValueError:  # nothing fits the budget
                    row[f"{name}_bytes"], row[f"{name}_psnr"] = None, None
            rows.append(row)
            bar.advance(job)
    return rows, failed


def format_compare(rows: list[dict], model_name: str) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = f"{'image':<16} {'aecli (' + model_name + ')':>28}   {'JPEG, same size':>18}   {'WebP, same size':>18}"
    out = [head, f"{'':<16} {'quality  bytes    bpp   PSNR':>28}   {'bytes   PSNR':>18}   {'bytes   PSNR':>18}"]
    for r in rows:
        out.append(
            f"{r['image']:<16} {r['quality']:>7} {r['bytes']:>6} {r['bpp']:>6.3f} {r['psnr']:>6.2f}   "
            f"{f(r['jpeg_bytes'], '>11')} {f(r['jpeg_psnr'], '>6.2f')}   {f(r['webp_bytes'], '>11')} {f(r['webp_psnr'], '>6.2f')}"
        )
    if rows:
        mean = lambda k: np.mean([r[k] for r in rows if r[k] is not None]) if any(r[k] is not None for r in rows) else None  # noqa: E731
        out.append(f"{'mean':<16} {'':>7} {'':>6} {mean('bpp'):>6.3f} {mean('psnr'):>6.2f}   "
                   f"{'':>11} {f(mean('jpeg_psnr'), '>6.2f')}   {'':>11} {f(mean('webp_psnr'), '>6.2f')}")
    return "\n".join(out)


def sweep_ours(files: list[Path], model: str | None, bar, job, effort: int, record: Path,
               resume: bool = False) -> tuple[list[dict], dict]:
    """Every quality of our model on every image (encoded at `effort`): mean bpp / PSNR / MS-SSIM and timings.

    ``record``: the file where each finished image's points are kept (partial.py); with ``resume``
    the images it already holds are not measured again.  The model info says how many were reused."""
    from ..registry import file_sha256
    from .partial import PartialRun

    codec = _load(model)
    info = {"name": codec.name, "fingerprint": codec.files.meta.get("fingerprint"),
            "training": codec.files.meta.get("training", {}), "effort": effort, "images_from_earlier_runs": 0}
    run = PartialRun(record, {"model": codec.name, "fingerprint": info["fingerprint"], "effort": effort,
                              "qualities": list(codec.qualities)}, resume)
    per_q = {q: {"bpp": [], "psnr": [], "ms_ssim": [], "encode_s": [], "decode_s": []} for q in codec.qualities}
    for f in files:
        where, digest = f.resolve(), file_sha256(f)
        points = run.get(where, digest)
        if points is not None:
            info["images_from_earlier_runs"] += 1
            bar.advance(job, len(codec.qualities))
        else:
            if hasattr(codec, "measure"):  # the fitted codec: one fit per quality
                points = codec.measure(read_image(f), effort, lambda: bar.advance(job), (psnr, ms_ssim))
            else:
                points = _measure_image(codec, read_image(f), effort, lambda: bar.advance(job))
            run.add(where, digest, points)
        for q in codec.qualities:
            for k, v in per_q[q].items():
                v.append(points[q][k])
    rows = [{"codec": "aecli", "quality": q, **{k: float(np.mean(v)) for k, v in d.items()}, "n_images": len(files)}
            for q, d in per_q.items()]
    return rows, info


def _load(model: str | None):
    """The codec to sweep: the fitted codec's evaluation face for 'fit', else a loaded model."""
    from ..codec.fitted import files as fitted

    if fitted.is_fitted(model):
        from ..codec.fitted.evaluation import EvalCodec

        return EvalCodec()
    from ..codec.api import load_codec

    return load_codec(model)


def _check_effort(model: str | None, effort: int) -> None:
    from ..codec.fitted import files as fitted

    if fitted.is_fitted(model):
        fitted.check_options(None, effort, None)
    else:
        from ..codec.refine import effort as effort_level

        effort_level(effort)  # a UserError for a level that does not exist, before any work


def _measure_image(codec, img: Image, effort: int, step) -> dict:
    """{quality: bpp, psnr, ms_ssim, encode_s, decode_s} of one image; `step()` after each quality."""
    h, w = img.pixels.shape[:2]
    # the analysis at each coding scale runs once per image and is counted in the encode time
    # of every quality that tries that scale
    analyses: dict = {}
    t_analyse = {}
    for scale in sorted({s for q in codec.qualities for s in codec.scales_tried(q, w, h)}):
        t0 = time.perf_counter()
        analyses[scale] = codec.analyse(codec.coded_image(img, scale))
        t_analyse[scale] = time.perf_counter() - t0
    points = {}
    for q in codec.qualities:
        t0 = time.perf_counter()
        data = codec.compress(img, q, analyses, effort)
        t1 = time.perf_counter()
        back = codec.decompress(latformat.unpack(data))
        t2 = time.perf_counter()
        points[q] = {"bpp": 8 * len(data) / (w * h), "psnr": psnr(img.rgb, back.rgb),
                     "ms_ssim": ms_ssim(img.rgb, back.rgb),
                     "encode_s": t1 - t0 + sum(t_analyse[s] for s in codec.scales_tried(q, w, h)),
                     "decode_s": t2 - t1}
        step()
    return points


def evaluate(paths: list[str], out_dir: str, model: str | None = None, baselines: tuple[str, ...] = ("jpeg", "webp", "avif"),
             published: str | None = None, name: str = "rd", effort: int = 0, resume: bool = False) -> dict:
    """RD sweep of our codec and the baselines; BD-rates; writes NAME.{md,csv,json} and NAME.png.
    Unreadable images are reported on stderr and left out (listed under "unreadable").
    Our codec's points are kept in NAME.partial.jsonl as each image is done, until the results are
    written; ``resume`` reuses the images recorded there by an unfinished run (partial.py)."""
    _check_effort(model, effort)
    files = _inputs(paths)
    unreadable = [f for f in files if _read_or_report(f, files) is None]
    bad = set(unreadable)
    files = [f for f in files if f not in bad]
    if not files:
        raise UserError("no readable images")
    _check_published(published)
    out = _output_folder(out_dir)
    record = out / f"{name}.partial.jsonl"  # our codec's finished images, until the results are written
    curves, model_info = _sweep_all(files, model, baselines, effort, record, resume)
    ours = curves["aecli"]
    result = {
        "images": len(files),
        "data": sorted({str(f.parent) for f in files}),
        "model": model_info,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "curves": curves,
        "bd_rate_vs": {b: _bd_rates(curves[b], ours) for b in baselines},
        "bd_rate_vs_published": _bd_published(published, ours),
        "note": "BD-rate of aecli relative to each codec: negative = aecli needs fewer bits at equal quality.",
    }
    if unreadable:
        result["unreadable"] = [str(f) for f in unreadable]
    _write_results(result, out, name, baselines, published)
    record.unlink(missing_ok=True)  # the run is complete
    return result


def _check_published(published: str | None) -> None:
    if published:
        try:
            rd.load_published(published)
        except FileNotFoundError:
            raise UserError(f"published curves not found: {published}") from None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"cannot read published curves {published}: {str(exc).splitlines()[0]}") from None


def _output_folder(out_dir: str) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} must be a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    return out


def _sweep_all(files: list[Path], model: str | None, baselines: tuple[str, ...], effort: int, record: Path,
               resume: bool) -> tuple[dict[str, list[dict]], dict]:
    """({"aecli": our points, baseline: its points}, our model's description), under one progress bar."""
    images = None
    n_ours = len(_load(model).qualities)
    total = len(files) * (n_ours + sum(len(BASELINE_QUALITIES[b]) for b in baselines))
    curves: dict[str, list[dict]] = {}
    with progress_bar() as bar:
        job = bar.add_task("eval", total=total, stats="")
        curves["aecli"], model_info = sweep_ours(files, model, bar, job, effort, record, resume)
        for b in baselines:
            if images is None:
                images = [read_image(f).rgb for f in files]
            pts = rd.baseline_sweep(images, b, BASELINE_QUALITIES[b], on_step=lambda: bar.advance(job))
            curves[b] = [p.as_dict() for p in pts]
    return curves, model_info


def _bd_rates(theirs: list[dict], ours: list[dict]) -> dict:
    """BD-rate (PSNR and MS-SSIM in dB) and BD-PSNR of our curve against another codec's."""
    br, ours_r = [p["bpp"] for p in theirs], [p["bpp"] for p in ours]
    ours_p, ours_m = [p["psnr"] for p in ours], [_db(p["ms_ssim"]) for p in ours]
    return {
        "bd_rate_psnr": _safe(rd.bd_rate, br, [p["psnr"] for p in theirs], ours_r, ours_p),
        "bd_psnr": _safe(rd.bd_psnr, br, [p["psnr"] for p in theirs], ours_r, ours_p),
        "bd_rate_msssim": _safe(rd.bd_rate, br, [_db(p["ms_ssim"]) for p in theirs], ours_r, ours_m),
    }


def _bd_published(published: str | None, ours: list[dict]) -> dict:
    if not published:
        return {}
    ours_r, ours_p = [p["bpp"] for p in ours], [p["psnr"] for p in ours]
    return {k: {"bd_rate_psnr": _safe(rd.bd_rate, [p[0] for p in pts], [p[1] for p in pts], ours_r, ours_p),
                "note": "published curve; its bpp counts only the entropy-coded strings"}
            for k, pts in rd.load_published(published).items()}


def _write_results(result: dict, out: Path, name: str, baselines: tuple[str, ...], published: str | None) -> None:
    """NAME.json, NAME.csv, NAME.md and (with matplotlib) NAME.png."""
    curves = result["curves"]
    write_output(out / f"{name}.json", (json.dumps(_clean(result), indent=2) + "\n").encode(), force=True)
    rows = [dict(p, codec=c) for c, pts in curves.items() for p in pts]
    rd.write_csv(rows, out / f"{name}.csv", columns=["codec", "quality", "bpp", "psnr", "ms_ssim"])
    write_output(out / f"{name}.md", markdown_report(result).encode(), force=True)
    try:
        plot = {"aecli (" + result["model"]["name"] + ")": [(p["bpp"], p["psnr"]) for p in curves["aecli"]]}
        plot.update({LABELS.get(b, b): [(p["bpp"], p["psnr"]) for p in curves[b]] for b in baselines})
        if published:
            for k, pts in rd.load_published(published).items():
                if "hyperprior" in k or "factorized" in k:
                    plot[k + " (published)"] = [(p[0], p[1]) for p in pts]
        rd.plot_rd(plot, out / f"{name}.png", title=f"Rate-distortion on {result['images']} images", xlim=(0, 2.0))
    except ImportError:
        pass


def _db(v: float) -> float:
    return -10.0 * math.log10(max(1.0 - v, 1e-12))


def _safe(fn, *args):
    try:
        v = fn(*args)
        return None if v is None or not math.isfinite(v) else round(float(v), 2)
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return None


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 5)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def markdown_report(result: dict) -> str:
    m = result["model"]
    lines = [f"# Rate-distortion: {result['images']} images from {', '.join(result['data'])}", "",
             f"Model `{m['name']}` (fingerprint {m['fingerprint']}), trained {m['training'].get('steps', '?')} steps "
             f"on {m['training'].get('hardware', '?')}." + (f" Encoder effort {m['effort']} (`aecli compress --effort "
                                                            f"{m['effort']}`)." if m.get("effort") else "")
             + (f" {m['images_from_earlier_runs']} of the {result['images']} images were measured by an earlier, "
                f"interrupted run of the same sweep (`--resume`); their times are from that run."
                if m.get("images_from_earlier_runs") else ""), "",
             "bpp counts whole files (our .lat header and CRC included). BD-rate < 0: aecli needs fewer bits at equal quality.", "",
             "| vs | BD-rate (PSNR) | BD-PSNR (dB) | BD-rate (MS-SSIM dB) |", "|---|---|---|---|"]
    for b, v in result["bd_rate_vs"].items():
        lines.append(f"| {LABELS.get(b, b)} | {_pct(v['bd_rate_psnr'])} | {v['bd_psnr'] if v['bd_psnr'] is not None else 'n/a'} | {_pct(v['bd_rate_msssim'])} |")
    for k, v in result.get("bd_rate_vs_published", {}).items():
        lines.append(f"| {k} (published*) | {_pct(v['bd_rate_psnr'])} | | |")
    lines += ["", "\\* published curves count only the entropy-coded strings, not file headers.", "",
              "| codec | quality | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |", "|---|---|---|---|---|---|---|"]
    for c, pts in result["curves"].items():
        for p in pts:
            enc = f"{p['encode_s']:.3f}" if "encode_s" in p else ""
            dec = f"{p['decode_s']:.3f}" if "decode_s" in p else ""
            lines.append(f"| {c} | {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | {enc} | {dec} |")
    return "\n".join(lines) + "\n"


def _pct(v) -> str:
    return "n/a (curves do not overlap)" if v is None else f"{v:+.1f}%"


def to_json(obj) -> str:
    return json.dumps(_clean(obj), indent=2)

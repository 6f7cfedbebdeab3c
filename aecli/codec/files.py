"""The codec on files, pipes and folders: what `aecli compress` / `decompress` do."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .. import batch
from .. import format as latformat
from ..errors import UserError
from ..atomic import check_output, write_output
from ..images.decode import pixels_from_env, read_bytes, read_image
from ..images.encode import encode_image, format_from_path, save_options
from ..images.walk import IMAGE_EXTS
from ..progress import note, progress_bar, set_verbose, spinner
from .decoding import DecodeError, model_for

METADATA_KINDS = ("icc", "exif", "xmp")
DEFAULT_METADATA = "icc,exif"
EFFORT_LEVELS = (0, 1, 2, 3)  # refine.EFFORTS, checked here without importing torch


def _is_pipe(p: str) -> bool:
    return p == "-"


def parse_metadata(text: str | None) -> tuple[str, ...]:
    """--metadata: 'all', 'none', or a comma list of icc, exif, xmp -> the kinds kept."""
    text = (DEFAULT_METADATA if text is None else text).strip().lower()
    if text == "all":
        return METADATA_KINDS
    if text in ("none", ""):
        return ()
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in METADATA_KINDS]
    if bad:
        raise UserError(f"--metadata {text}: unknown kind '{bad[0]}' (all, none, or a comma list of icc, exif, xmp)")
    return tuple(k for k in METADATA_KINDS if k in kinds)


def _kept(img, keep: tuple[str, ...]) -> tuple:
    """The (name, bytes) pairs of the image's metadata that --metadata keeps, in the format's order."""
    return tuple((k, img.metadata[k]) for k in METADATA_KINDS if k in keep and img.metadata.get(k))


def _with_metadata(data: bytes, meta: tuple) -> bytes:
    return latformat.pack(dataclasses.replace(latformat.unpack(data), metadata=meta)) if meta else data


def _meta_bytes(meta: tuple) -> int:
    """Bytes the metadata adds to a file."""
    if not meta:
        return 0
    base = latformat.LatFile("m", b"\0" * 4, 1, 1, 1, "L")
    return dataclasses.replace(base, metadata=meta).file_size() - base.file_size()


@dataclasses.dataclass(frozen=True)
class Request:
    """What `aecli compress` was asked for, parsed and checked once (parse_request) before any image
    is read or any model loaded."""

    quality: int | None = None  # -Q (None: the model's default)
    target_bpp: float | None = None
    max_bytes: int | None = None
    effort: int = 0
    scale: int | None = None  # --scale in eighths (None: auto)
    metadata: tuple[str, ...] = ()  # the --metadata kinds kept
    nearest: bool = False
    time_limit: float | None = None  # (the fitted codec's)

    @property
    def searching(self) -> bool:
        """A file-size budget is given: the quality is searched for."""
        return self.target_bpp is not None or self.max_bytes is not None

    def budget(self, width: int, height: int) -> int:
        """The budget in bytes of a width x height image's file (--max-bytes, or --target-bpp)."""
        return self.max_bytes if self.max_bytes is not None else int(self.target_bpp * width * height / 8)

    def asked(self, budget: int) -> str:
        """The budget as the user gave it, for messages."""
        return f"--max-bytes {self.max_bytes}" if self.max_bytes is not None else f"--target-bpp {self.target_bpp:g} ({budget} bytes)"


def parse_request(*, model: str | None, quality: int | None, target_bpp: float | None, max_bytes: int | None,
                  effort: int, time_limit: float | None, scale: str | None, metadata: str | None,
                  nearest: bool) -> Request:
    """compress's options checked (UserError), in the order they are reported."""
    from .fitted import files as fitted

    if fitted.is_fitted(model):
        fitted.check_options(quality, effort, time_limit)
        if scale not in (None, "auto", "1"):
            raise UserError("--scale is not used by the fitted codec (it codes each image at its own size)")
    else:
        if effort not in EFFORT_LEVELS:
            raise UserError(f"--effort must be one of {', '.join(str(e) for e in EFFORT_LEVELS)}")
        if time_limit is not None:
            raise UserError("--time-limit applies to the fitted codec only (--model fit)")
    keep = parse_metadata(metadata)
    eighths = None if fitted.is_fitted(model) else parse_scale(scale)
    if target_bpp is not None and max_bytes is not None:
        raise UserError("give either --target-bpp or --max-bytes, not both")
    if quality is not None and (target_bpp is not None or max_bytes is not None):
        raise UserError("--quality cannot be combined with --target-bpp or --max-bytes")
    if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
        raise UserError(f"--target-bpp must be a positive number, not {target_bpp}")
    if max_bytes is not None and max_bytes <= 0:
        raise UserError("--max-bytes must be positive")
    return Request(quality, target_bpp, max_bytes, effort, eighths, keep, nearest, time_limit)


def _compress_one(codec, quality, src: str, dst: str, request: Request, force: bool, show: bool = False) -> str:
    """One image coded by `codec` at `quality` (levels.Quality; unused when searching) as
    `request` says, written to `dst`; the line that reports it."""
    from . import rate

    t0 = time.perf_counter()
    img = read_image(src)
    h, w = img.pixels.shape[:2]
    if img.frames > 1:
        batch.say(f"aecli: warning: {src} has {img.frames} frames (animated): only the first is coded")
    meta = _kept(img, request.metadata)
    searching = request.searching
    status = spinner(f"finding the best quality that fits ({w}x{h})") if searching and show and not request.effort else nullcontext()
    with status, _refine_bar(codec, img, request.effort, searching or request.scale is None, show) as bar:
        if searching:
            coded = _within_budget(codec, img, src, request, meta, bar)
        else:
            coded = rate.compress(codec, img, quality, {}, request.effort, bar, request.scale)
    data = _with_metadata(coded.data, meta)
    write_output(dst, data, inputs=[src], force=force)
    bpp = 8 * len(data) / (w * h)
    at = f" (coded at {coded.scale}/8 of its size)" if coded.scale != 8 else ""
    kept = f", with {'+'.join(k for k, _ in meta)} ({_meta_bytes(meta)} bytes)" if meta else ""
    note(f"{src}: coded in {time.perf_counter() - t0:.2f} s")
    return f"{src} -> {dst}: {w}x{h} {img.mode}, quality {coded.quality}{at}, {len(data)} bytes, {bpp:.3f} bpp{kept}"


def _within_budget(codec, img, src: str, request: Request, meta: tuple, bar):
    """rate.Coded: the highest quality whose file, metadata included, fits the request's budget;
    else the smallest file with --nearest (a warning), a UserError without."""
    from . import rate

    h, w = img.pixels.shape[:2]
    budget = request.budget(w, h)
    coded = rate.compress_to_fit(codec, img, budget - _meta_bytes(meta), request.effort, bar, request.scale)
    if not coded.fits:
        size = len(coded.data) + _meta_bytes(meta)
        if not request.nearest:
            hint = f"; --metadata none saves {_meta_bytes(meta)} bytes" if meta else ""
            raise UserError(f"{src}: no quality fits {request.asked(budget)}: the smallest file, quality {coded.quality}, "
                            f"has {size} bytes (--nearest writes it anyway{hint})")
        batch.say(f"aecli: warning: {src}: no quality fits {request.asked(budget)}; wrote the smallest file, "
                  f"quality {coded.quality}, {size} bytes")
    return coded


def parse_scale(text: str | None) -> int | None:
    """--scale: 'auto' (None: the encoder tries each scale and keeps the better file), or a factor
    such as 1 or 1.375, in eighths."""
    if text is None or text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"--scale must be 'auto' or a factor such as 1 or 1.375, not {text!r}")
    eighths = round(value * 8)
    if abs(eighths - value * 8) > 1e-9 or not 8 <= eighths <= 16:
        raise UserError(f"--scale {text}: must be 'auto' or a multiple of 1/8 from 1 to 2")
    return eighths


@contextmanager
def _refine_bar(codec, img, effort: int, searching: bool, show: bool):
    """A progress bar over the refinement steps of one image (effort > 0, single files on a terminal),
    as a callable advanced once per step; None otherwise."""
    from . import refine

    steps = refine.effort(effort).steps
    if not steps or not show:
        yield None
        return
    a = codec.model.align
    h, w = img.pixels.shape[:2]
    total = steps * refine.tiles((-(-h // a) * a // 16, -(-w // a) * a // 16))
    with progress_bar() as bar:  # no total while the search or the choice of scale may code more than once
        job = bar.add_task("refine", total=None if searching else total, stats=f"effort {effort}")
        yield lambda: bar.advance(job)


def _load_codec(model: str | None, device: str, quality: int | None):
    """(codec, quality): the codec (torch imported here, not before), its load time said with
    --verbose, and the quality parsed against it (levels.Quality; None: the model's default)."""
    t0 = time.perf_counter()
    from .api import load_codec

    codec = load_codec(model, device)
    level = codec.quality(quality)
    note(f"model {codec.name} ({codec.files.fingerprint.hex()}) loaded in {time.perf_counter() - t0:.2f} s, torch included")
    return codec, level


def compress(src: str, dst: str | None, *, model: str | None, quality: int | None, target_bpp: float | None,
             max_bytes: int | None, force: bool, quiet: bool, workers: int = 1, device: str = "cpu",
             effort: int = 0, scale: str | None = None, metadata: str | None = None, nearest: bool = False,
             verbose: bool = False, time_limit: float | None = None) -> int:
    from .fitted import files as fitted

    set_verbose(verbose and not quiet)
    request = parse_request(model=model, quality=quality, target_bpp=target_bpp, max_bytes=max_bytes, effort=effort,
                            time_limit=time_limit, scale=scale, metadata=metadata, nearest=nearest)
    derived = dst is None
    if derived:
        dst = "-" if _is_pipe(src) else str(Path(src).with_suffix(".lat"))
    if fitted.is_fitted(model):
        def one(a, b, force_one, show=False):
            return fitted.compress_one(a, b, request, force_one, show)
    if not _is_pipe(src) and Path(src).is_dir():
        pairs = batch.plan(Path(src), Path(dst), IMAGE_EXTS, ".lat")
        if fitted.is_fitted(model):
            s = batch.run(pairs, lambda a, b: one(str(a), str(b), True), force=force, quiet=quiet, label="compress",
                          workers=workers, problem=batch.lat_problem)
            return 1 if s.failed else 0
        loaded = []

        def prepare():  # only when some file is left to do (batch.run): skips decided without torch
            loaded.append(_load_codec(model, device, quality))

        s = batch.run(pairs, lambda a, b: _compress_one(*loaded[0], str(a), str(b), request, True),
                      force=force, quiet=quiet, label="compress", workers=workers, problem=batch.lat_problem,
                      prepare=prepare)
        return 1 if s.failed else 0
    if not _is_pipe(src) and not Path(src).exists():
        if quiet and src.strip().isdigit():  # `aecli compress -q 9 x.png`, as with cwebp or cjxl
            raise UserError(f"input not found: {src} (-q is --quiet here; for quality {src} write -Q {src} "
                            f"or --quality {src})")
        raise UserError(f"input not found: {src}")
    _check_single(src, dst, force, derived, lat_out=True)
    if fitted.is_fitted(model):
        batch.say(one(src, dst, force, show=not quiet), quiet)
        return 0
    codec, level = _load_codec(model, device, quality)
    batch.say(_compress_one(codec, level, src, dst, request, force, show=not quiet), quiet)
    return 0


def _check_single(src: str, dst: str, force: bool, derived: bool, lat_out: bool) -> None:
    """Before any work on a single file: the output may be written (atomic.check_output), and its
    extension fits what is written (.lat bytes never go to an image name, nor an image to a .lat name)."""
    check_output(dst, inputs=[src], force=True)  # the same file as the input, a folder: said first
    suffix = "" if _is_pipe(dst) else Path(dst).suffix.lower()
    if lat_out and suffix in IMAGE_EXTS:
        raise UserError(f"output {dst} has an image extension, but compress writes a .lat file; "
                        f"name it NAME.lat (or '-' for stdout)")
    if not lat_out and suffix == ".lat":
        raise UserError(f"output {dst} has the .lat extension, but decompress writes an image; "
                        f"name it NAME.png (or another image extension)")
    check_output(dst, force=force, derived=derived)


def max_pixels_policy(option: int | None) -> int:
    """The decode pixel limit: --max-pixels, else $AECLI_MAX_PIXELS, else the default (2^26);
    0 means no limit beyond the format's own (2^28)."""
    DEFAULT_MAX_PIXELS = latformat.DEFAULT_DECODE_PIXELS  # (api's, without importing torch)

    if option is not None:
        if option < 0:
            raise UserError("--max-pixels must be >= 0 (0: no limit)")
        return option
    value = pixels_from_env()
    return DEFAULT_MAX_PIXELS if value is None else value


def _decompress_one(src: str, dst: str, model: str | None, fmt: str | None, force: bool, max_pixels: int,
                    device: str = "cpu", exact: bool = False, output_quality: int | None = None) -> str:
    t0 = time.perf_counter()
    shown = "<stdin>" if _is_pipe(src) else src
    data = read_bytes(src)
    try:
        lat = latformat.unpack(data)
    except latformat.FormatError as exc:
        raise UserError(f"{shown}: {exc}") from None
    if lat.kind == "fitted":
        return _decompress_fitted(lat, src, shown, dst, fmt, force, max_pixels, exact)
    try:
        img = _decode(lat, model, device, max_pixels, exact)
    except DecodeError as exc:
        raise UserError(f"{shown}: {exc}") from None
    out_fmt = fmt or format_from_path(dst, default="png")
    write_output(dst, encode_image(img, out_fmt, metadata=lat.meta(), **save_options(out_fmt, output_quality)),
                 inputs=[src], force=force)
    note(f"{shown}: decoded in {time.perf_counter() - t0:.2f} s (the first file includes loading torch and the model)")
    kept = f", with {'+'.join(k for k, _ in lat.metadata)}" if lat.metadata else ""
    return f"{src} -> {dst}: {lat.width}x{lat.height} {lat.mode}, quality {lat.quality}, model {lat.model}{kept}"


def _decode(lat, model: str | None, device: str, max_pixels: int, exact: bool):
    """The image of an autoencoder-codec file: with numpy alone where it can (a bundled model on
    the CPU: no torch to import, numpy_decoder.py), else with torch."""
    from . import numpy_decoder

    files = model_for(lat, model)
    if numpy_decoder.usable(files, lat, exact, device) and os.environ.get("AECLI_DECODER", "") != "torch":
        return numpy_decoder.decompress(lat, files, max_pixels)
    from .api import codec_of

    return codec_of(files, device).decompress(lat, max_pixels=max_pixels, exact=exact)


def _decompress_fitted(lat, src: str, shown: str, dst: str, fmt: str | None, force: bool, max_pixels: int,
                       exact: bool) -> str:
    from .fitted import decoder as fitted  # numpy alone: no torch to import

    if exact:
        raise UserError(f"{shown}: --exact is not available for fitted files (their latents decode alike everywhere; "
                        f"pixels may differ by one level between machines)")
    try:
        img = fitted.decompress(lat, max_pixels=max_pixels)
    except fitted.FittedDecodeError as exc:
        raise UserError(f"{shown}: {exc}") from None
    out_fmt = fmt or format_from_path(dst, default="png")
    write_output(dst, encode_image(img, out_fmt), inputs=[src], force=force)
    return f"{src} -> {dst}: {lat.width}x{lat.height} {lat.mode}, fitted quality {lat.quality}"


def decompress(src: str, dst: str | None, *, model: str | None, fmt: str | None, force: bool, quiet: bool,
               max_pixels: int | None = None, workers: int = 1, device: str = "cpu", exact: bool = False,
               output_quality: int | None = None, verbose: bool = False) -> int:
    set_verbose(verbose and not quiet)
    limit = max_pixels_policy(max_pixels)
    if device != "cpu":  # a missing device is an error before any file is read (the CPU needs no torch yet)
        from ..devices import pick_device

        pick_device(device)
    derived = dst is None
    if derived:  # never NAME.png: that is most likely the original image
        dst = "-" if _is_pipe(src) else str(Path(src).with_name(f"{Path(src).stem}.decoded.{fmt or 'png'}"))
    if not _is_pipe(src) and Path(src).is_dir():
        suffix = "." + (fmt or "png")
        pairs = batch.plan(Path(src), Path(dst), (".lat",), suffix)
        s = batch.run(pairs, lambda a, b: _decompress_one(str(a), str(b), model, fmt, True, limit, device, exact,
                                                          output_quality),
                      force=force, quiet=quiet, label="decompress", workers=workers, problem=batch.image_problem)
        return 1 if s.failed else 0
    if not fmt:
        format_from_path(dst, default="png")  # an output extension we cannot write fails before any work
    _check_single(src, dst, force, derived, lat_out=False)
    batch.say(_decompress_one(src, dst, model, fmt, force, limit, device, exact, output_quality), quiet)
    return 0

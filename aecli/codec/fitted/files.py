"""`aecli compress --model fit`: the fitted codec on files, with its progress bar."""

from __future__ import annotations

from contextlib import contextmanager

from ... import batch
from ...errors import UserError
from ...atomic import write_output
from ...images.decode import read_image
from ...progress import progress_bar

MODEL_NAMES = ("fit",)


def is_fitted(model: str | None) -> bool:
    return model in MODEL_NAMES


def check_options(quality: int | None, effort: int, time_limit: float | None, exact: bool = False) -> None:
    """Every option the fitted codec reads, checked before any work (UserError)."""
    from . import codec

    if quality is not None:
        codec.lambda_of(quality)
    if effort:
        codec.iterations_of(effort)
    if time_limit is not None and not time_limit > 0:
        raise UserError("--time-limit must be a positive number of seconds")


@contextmanager
def _bar(show: bool, total: int, label: str):
    """A progress callback showing iteration, bpp and PSNR (only on a terminal)."""
    if not show:
        yield None
        return
    with progress_bar() as bar:
        job = bar.add_task(label, total=total, stats="")

        def report(p):
            stats = "choosing the integers" if p.finishing else f"{p.bpp:.3f} bpp  {p.psnr:.2f} dB"
            bar.update(job, completed=p.iteration, total=p.total, stats=stats)

        yield report


def compress_one(src: str, dst: str, request, force: bool, show: bool = False) -> str:
    """One image fitted as `request` (a codec.files.Request: quality or budget, effort, time limit)
    says, written to `dst`; the line that reports it."""
    from . import codec

    img = read_image(src)
    h, w = img.pixels.shape[:2]
    codec.check_size(w, h)
    effort = request.effort or codec.DEFAULT_EFFORT
    total = codec.iterations_of(effort)
    with _bar(show, total, f"fit (effort {effort})") as report:
        if request.searching:
            budget = request.budget(w, h)
            res, quality, fits = _fit_budget(img, budget, effort, request.time_limit, report)
            if not fits:
                batch.say(f"aecli: warning: {src}: even quality {quality} needs {len(res.data)} bytes, over the budget of {budget}")
        else:
            quality = codec.DEFAULT_QUALITY if request.quality is None else request.quality
            res = codec.compress(img, quality, effort, request.time_limit, report)
    write_output(dst, res.data, inputs=[src], force=force)
    return (f"{src} -> {dst}: {w}x{h} {img.mode}, fitted quality {quality}, {res.iterations} iterations in "
            f"{res.seconds:.1f} s, {len(res.data)} bytes, {res.bpp:.3f} bpp, {res.psnr:.2f} dB")


def _fit_budget(img, budget: int, effort: int, time_limit: float | None, report):
    """The highest quality whose fitted file fits in `budget` bytes: a binary search over the
    qualities, one fit per try (the time limit, if any, is shared among the tries)."""
    from . import codec

    qualities = sorted(codec.LAMBDAS)
    lo, hi, best, last = 0, len(qualities) - 1, None, None
    tries = max(1, (len(qualities) - 1).bit_length())
    while lo <= hi:
        mid = (lo + hi) // 2
        res = codec.compress(img, qualities[mid], effort, time_limit / tries if time_limit else None, report)
        last = (res, qualities[mid])
        if len(res.data) <= budget:
            best, lo = last, mid + 1
        else:
            hi = mid - 1
    if best is None:
        return last[0], last[1], False
    return best[0], best[1], True

"""Rate-distortion tools: Bjøntegaard deltas, classical-codec baselines, tables, plots.

Everything here works on plain numbers and ``uint8`` numpy images; no torch.
matplotlib is only needed by :func:`plot_rd` (the optional ``bench`` extra) and
is imported inside it.

Baselines are real files written by Pillow into memory:

========  ==============================================  =============
codec     encoder settings (defaults, overridable)        quality range
========  ==============================================  =============
``jpeg``  ``quality=q, optimize=True``; Pillow's default  1..100
          chroma subsampling (4:2:0)
``webp``  ``quality=q, method=6`` (slowest, best)         0..100
``avif``  ``quality=q``, Pillow's default ``speed=6``     0..100
          and 4:2:0 subsampling (libavif via Pillow)
========  ==============================================  =============

bpp is ``8 * len(file) / (H * W)`` and so includes the container headers,
which is what a user pays; CompressAI's published bpp for learned codecs
counts only the entropy-coded strings.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..metrics import ms_ssim, psnr

__all__ = [
    "CODECS",
    "RDPoint",
    "bd_rate",
    "bd_psnr",
    "encode",
    "decode",
    "encode_decode",
    "measure",
    "baseline_sweep",
    "find_quality",
    "size_matched",
    "load_published",
    "to_markdown",
    "write_markdown",
    "write_csv",
    "write_json",
    "write_table",
    "plot_rd",
]


# --------------------------------------------------------------------------- BD


def _check_curve(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"curve has {x.size} x values but {y.size} y values")
    if x.size < 2:
        raise ValueError("a curve needs at least 2 points")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("curve values must be finite (drop lossless points)")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise ValueError("curve has repeated x values")
    return x, y


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives of the monotone piecewise cubic Hermite interpolant (Fritsch-Carlson,
    with the same weighted harmonic mean and end conditions as scipy's PchipInterpolator)."""
    h = np.diff(x)
    m = np.diff(y) / h
    n = x.size
    if n == 2:
        return np.array([m[0], m[0]])
    d = np.zeros(n)
    w1 = 2.0 * h[1:] + h[:-1]
    w2 = h[1:] + 2.0 * h[:-1]
    same = (np.sign(m[1:]) * np.sign(m[:-1])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = (w1 + w2) / (w1 / m[:-1] + w2 / m[1:])
    d[1:-1] = np.where(same, hm, 0.0)

    def end(h0, h1, m0, m1):
        dd = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(dd) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(dd) > abs(3.0 * m0):
            return 3.0 * m0
        return dd

    d[0] = end(h[0], h[1], m[0], m[1])
    d[-1] = end(h[-1], h[-2], m[-1], m[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] (inside [x0, xn]) of the PCHIP interpolant."""
    d = _pchip_slopes(x, y)
    h = np.diff(x)
    m = np.diff(y) / h
    # per segment: y(t) = a + b t + c t^2 + e t^3, t = x - x_k in [0, h_k]
    a, b = y[:-1], d[:-1]
    c = (3.0 * m - 2.0 * d[:-1] - d[1:]) / h
    e = (d[:-1] + d[1:] - 2.0 * m) / (h * h)
    # clip every segment to [lo, hi] in local coordinates; empty ones give t0 == t1
    t0 = np.clip(lo, x[:-1], x[1:]) - x[:-1]
    t1 = np.clip(hi, x[:-1], x[1:]) - x[:-1]

    def antiderivative(t):
        return a * t + b * t**2 / 2 + c * t**3 / 3 + e * t**4 / 4

    return float(np.sum(antiderivative(t1) - antiderivative(t0)))


def _poly_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    deg = min(3, x.size - 1)
    p = np.polynomial.Polynomial.fit(x, y, deg).integ()
    return float(p(hi) - p(lo))


def _mean_gap(xa, ya, xb, yb, method: str) -> float:
    """Mean of (curve B - curve A) over the x interval both curves cover."""
    xa, ya = _check_curve(xa, ya)
    xb, yb = _check_curve(xb, yb)
    lo = max(xa[0], xb[0])
    hi = min(xa[-1], xb[-1])
    if not hi > lo:
        raise ValueError("the two curves do not overlap")
    if method == "cubic":
        integ = _poly_integral
    elif method == "pchip":
        integ = _pchip_integral
    else:
        raise ValueError(f"unknown method {method!r} (use 'cubic' or 'pchip')")
    return (integ(xb, yb, lo, hi) - integ(xa, ya, lo, hi)) / (hi - lo)


def bd_rate(rate_a, psnr_a, rate_b, psnr_b, method: str = "cubic") -> float:
    """Bjøntegaard delta rate of curve B relative to curve A, in percent.

    Negative means B needs fewer bits than A for the same quality. ``psnr_*``
    can be any quality measure where higher is better (for MS-SSIM, pass
    ``-10*log10(1 - ms_ssim)``).

    ``method='cubic'`` (default) is the classic VCEG-M33 computation: a
    least-squares cubic of log(rate) as a function of PSNR for each curve
    (degree ``n-1`` for curves of fewer than 4 points), integrated over the
    PSNR interval both curves cover. ``method='pchip'`` replaces the cubic by
    the monotone piecewise cubic Hermite interpolant through the points (as in
    the later JVET/VCEG-AL22 spreadsheets), which does not oscillate.
    """
    ra = np.asarray(rate_a, dtype=np.float64)
    rb = np.asarray(rate_b, dtype=np.float64)
    if np.any(ra <= 0) or np.any(rb <= 0):
        raise ValueError("rates must be positive")
    gap = _mean_gap(psnr_a, np.log(ra), psnr_b, np.log(rb), method)
    return (math.exp(gap) - 1.0) * 100.0


def bd_psnr(rate_a, psnr_a, rate_b, psnr_b, method: str = "cubic") -> float:
    """Bjøntegaard delta PSNR (dB) of curve B over curve A at equal rate.

    Positive means B has higher quality. Fits PSNR as a function of log(rate)
    over the overlapping rate interval; ``method`` as in :func:`bd_rate`.
    """
    ra = np.asarray(rate_a, dtype=np.float64)
    rb = np.asarray(rate_b, dtype=np.float64)
    if np.any(ra <= 0) or np.any(rb <= 0):
        raise ValueError("rates must be positive")
    return _mean_gap(np.log(ra), psnr_a, np.log(rb), psnr_b, method)


# ------------------------------------------------------------------ baselines

#: codec name -> (Pillow format, default save options, (min quality, max quality))
CODECS: dict[str, tuple[str, dict, tuple[int, int]]] = {
    "jpeg": ("JPEG", {"optimize": True}, (1, 100)),
    "webp": ("WEBP", {"method": 6}, (0, 100)),
    "avif": ("AVIF", {}, (0, 100)),
}


def _codec(name: str) -> tuple[str, dict, tuple[int, int]]:
    try:
        return CODECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}") from None


def _as_image(image: np.ndarray):
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {a.dtype}")
    if a.ndim == 2:
        return Image.fromarray(a, "L")
    if a.ndim == 3 and a.shape[2] == 3:
        return Image.fromarray(a, "RGB")
    raise ValueError(f"expected an HxW or HxWx3 image, got shape {a.shape}")


def encode(image: np.ndarray, codec: str, quality: int, **options) -> bytes:
    """Encode a uint8 HxW / HxWx3 image with a Pillow codec; returns the file bytes."""
    fmt, defaults, _ = _codec(codec)
    im = _as_image(image)
    if fmt == "WEBP" and im.mode == "L":
        im = im.convert("RGB")  # WebP has no grayscale mode
    buf = io.BytesIO()
    im.save(buf, fmt, quality=int(quality), **{**defaults, **options})
    return buf.getvalue()


def decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    """Decode image file bytes to a uint8 array (``mode`` 'RGB' or 'L')."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(mode))


def encode_decode(image: np.ndarray, codec: str, quality: int, **options) -> tuple[bytes, np.ndarray]:
    data = encode(image, codec, quality, **options)
    return data, decode(data, "L" if np.ndim(image) == 2 else "RGB")


@dataclass
class RDPoint:
    """One operating point: means over images at one codec setting."""

    codec: str
    quality: int
    bpp: float
    psnr: float
    ms_ssim: float
    n_images: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


def measure(image: np.ndarray, codec: str, quality: int, **options) -> dict:
    """Encode + decode one image; returns ``{bytes, bpp, psnr, ms_ssim}``."""
    data, dec = encode_decode(image, codec, quality, **options)
    h, w = np.shape(image)[:2]
    return {
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (h * w),
        "psnr": psnr(image, dec),
        "ms_ssim": ms_ssim(image, dec),
    }


def _measure_task(args):
    image, codec, quality, options = args
    return measure(image, codec, quality, **options)


def baseline_sweep(
    images: Iterable[np.ndarray],
    codec: str,
    qualities: Iterable[int],
    *,
    workers: int = 1,
    on_step: Callable[[], None] | None = None,
    **options,
) -> list[RDPoint]:
    """Sweep a Pillow codec over ``qualities`` on uint8 RGB (or gray) images.

    Returns one :class:`RDPoint` per quality, in the given order, holding the
    mean over images of the per-image bpp, PSNR and MS-SSIM (the CompressAI
    convention). ``options`` override the codec's save options (e.g.
    ``speed=4`` for AVIF, ``subsampling=0`` for 4:4:4 JPEG). ``workers > 1``
    encodes in that many processes; ``on_step`` is called after each
    (image, quality) pair, e.g. to advance a progress bar.
    """
    _codec(codec)
    images = list(images)
    qualities = [int(q) for q in qualities]
    if not images:
        raise ValueError("no images")
    tasks = [(img, codec, q, options) for q in qualities for img in images]
    results: list[dict] = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for r in pool.map(_measure_task, tasks):
                results.append(r)
                if on_step:
                    on_step()
    else:
        for t in tasks:
            results.append(_measure_task(t))
            if on_step:
                on_step()
    n = len(images)
    points = []
    for i, q in enumerate(qualities):
        chunk = results[i * n : (i + 1) * n]
        points.append(
            RDPoint(
                codec=codec,
                quality=q,
                bpp=float(np.mean([r["bpp"] for r in chunk])),
                psnr=float(np.mean([r["psnr"] for r in chunk])),
                ms_ssim=float(np.mean([r["ms_ssim"] for r in chunk])),
                n_images=n,
            )
        )
    return points


def find_quality(image: np.ndarray, codec: str, max_bytes: int, **options) -> tuple[int, bytes]:
    """Largest quality whose file fits in ``max_bytes``, by binary search.

    File size is assumed to grow with quality (true up to small wiggles; the
    returned file always fits). Raises ``ValueError`` if even the lowest
    quality does not fit.
    """
    _, _, (qmin, qmax) = _codec(codec)
    best: tuple[int, bytes] | None = None
    lo, hi = qmin, qmax
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(image, codec, mid, **options)
        if len(data) <= max_bytes:
            best = (mid, data)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise ValueError(f"{codec} cannot fit this image in {max_bytes} bytes, even at quality {qmin}")
    return best


def size_matched(image: np.ndarray, codec: str, max_bytes: int, **options) -> tuple[bytes, np.ndarray]:
    """The ``codec`` file (and its decoded image) at the largest quality fitting ``max_bytes``.

    Use it to show "JPEG / WebP at the same size" next to a learned codec.
    """
    _, data = find_quality(image, codec, max_bytes, **options)
    return data, decode(data, "L" if np.ndim(image) == 2 else "RGB")


# ------------------------------------------------------------ published data


def load_published(path: str | os.PathLike) -> dict[str, list[tuple[float, ...]]]:
    """Load a ``kodak_rd_published.json``-style file: name -> [(bpp, psnr, ms_ssim), ...].

    Keys starting with ``_`` (such as ``_about``) are skipped; points are sorted by bpp.
    """
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    curves = {}
    for name, pts in raw.items():
        if name.startswith("_"):
            continue
        curves[name] = sorted((tuple(float(v) for v in p) for p in pts), key=lambda p: p[0])
    return curves


# --------------------------------------------------------------------- tables


def _rows(rows: Iterable) -> list[dict]:
    out = []
    for r in rows:
        if isinstance(r, RDPoint):
            out.append(r.as_dict())
        elif isinstance(r, Mapping):
            out.append(dict(r))
        else:
            raise TypeError(f"table rows must be dicts or RDPoints, got {type(r).__name__}")
    return out


def _columns(rows: list[dict], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def _fmt(v, digits: int) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def to_markdown(rows: Iterable, columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (dicts or RDPoints)."""
    rows = _rows(rows)
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c), digits) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _atomic_write(path, data: bytes) -> Path:
    """Write through the package's atomic writer (temporary file beside it, then rename); a result
    file of an earlier run under the same name is replaced."""
    from ..atomic import write_output

    write_output(path, data, force=True)
    return Path(path)


def write_markdown(rows: Iterable, path, columns: Sequence[str] | None = None, digits: int = 4) -> Path:
    return _atomic_write(path, to_markdown(rows, columns, digits).encode("utf-8"))


def write_csv(rows: Iterable, path, columns: Sequence[str] | None = None) -> Path:
    rows = _rows(rows)
    cols = _columns(rows, columns)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return _atomic_write(path, buf.getvalue().encode("utf-8"))


def _jsonable(obj):
    if isinstance(obj, RDPoint):
        return obj.as_dict()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(obj, path) -> Path:
    """Write results (dicts, lists, RDPoints, numpy scalars) as indented JSON."""
    return _atomic_write(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode("utf-8"))


def write_table(rows: Iterable, path, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as .md, .csv or .json, chosen by the file suffix."""
    suffix = Path(path).suffix.lower()
    rows = _rows(rows)
    if suffix == ".md":
        return write_markdown(rows, path, columns)
    if suffix == ".csv":
        return write_csv(rows, path, columns)
    if suffix == ".json":
        cols = _columns(rows, columns)
        return write_json([{c: r.get(c) for c in cols} for r in rows], path)
    raise ValueError(f"unknown table format {suffix!r} (use .md, .csv or .json)")


# ---------------------------------------------------------------------- plots


def _xy(points) -> tuple[list[float], list[float]]:
    pts = []
    for p in points:
        if isinstance(p, RDPoint):
            pts.append((p.bpp, p.psnr))
        elif isinstance(p, Mapping):
            pts.append((float(p["bpp"]), float(p["psnr"])))
        else:
            pts.append((float(p[0]), float(p[1])))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_rd(
    curves: Mapping[str, Iterable],
    path,
    title: str = "",
    *,
    xlabel: str = "bits per pixel (bpp)",
    ylabel: str = "PSNR (dB)",
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    dpi: int = 150,
) -> Path:
    """Save a PNG of rate-distortion curves: name -> [(bpp, psnr[, ...]), ...].

    Points may also be :class:`RDPoint` objects or dicts with ``bpp``/``psnr``.
    Needs matplotlib (``pip install aecli[bench]``); uses the Agg canvas
    directly, without touching pyplot's global state.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_rd needs matplotlib: pip install 'aecli[bench]'") from e

    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, pts in curves.items():
        x, y = _xy(pts)
        ax.plot(x, y, marker="o", markersize=3, linewidth=1.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if xlim:
        ax.set_xlim(*xlim)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return _atomic_write(path, buf.getvalue())

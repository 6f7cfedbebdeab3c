"""Pictures made with Pillow alone: image grids and a 2-D map of codes coloured by label."""

from __future__ import annotations

import numpy as np

# a colour per label, distinguishable and printable (Tableau 10, then repeats)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def grid(images: np.ndarray, cols: int, pad: int = 2, scale: int | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images on the 0..1 scale into one uint8 picture (H', W') or (H', W', 3),
    `cols` per row, white gutters; small images are enlarged by an integer factor (nearest)."""
    n, c, h, w = images.shape
    if scale is None:
        scale = max(1, 64 // max(h, w))
    rows = -(-n // cols)
    hh, ww = h * scale, w * scale
    canvas = np.full((rows * (hh + pad) + pad, cols * (ww + pad) + pad, c), 255, dtype=np.uint8)
    pix = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    if scale > 1:
        pix = pix.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (hh + pad), pad + k * (ww + pad)
        canvas[y : y + hh, x : x + ww] = pix[i]
    return canvas[..., 0] if c == 1 else canvas


def pca2(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes projected on their first two principal components, and the explained variance ratios."""
    x = codes.astype(np.float64) - codes.mean(axis=0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros(2)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    proj = x @ comps.T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return proj, np.pad(ratio, (0, 2 - len(ratio)))


def code_map(codes: np.ndarray, labels: list[str], size: int = 800, title: str = "") -> np.ndarray:
    """An RGB scatter plot (size x size + legend) of the codes' first two principal components."""
    from PIL import Image, ImageDraw

    proj, ratio = pca2(codes)
    names = sorted(set(labels))
    legend_w = 160 if any(names) else 0
    img = Image.new("RGB", (size + legend_w, size), "white")
    d = ImageDraw.Draw(img)
    m = 40
    d.rectangle([m, m, size - m, size - m], outline=(0, 0, 0))
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = (proj - lo) / span * (size - 2 * m - 10) + m + 5
    r = 2 if len(codes) > 2000 else 3
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    order = np.random.default_rng(0).permutation(len(codes))  # no label painted wholly on top
    for i in order:
        x, y = xy[i, 0], size - xy[i, 1]
        d.ellipse([x - r, y - r, x + r, y + r], fill=colour[labels[i]])
    d.text((m, 10), title or f"PCA of {codes.shape[1]}-d codes, {len(codes)} images", fill=(0, 0, 0))
    d.text((m, size - m + 8), f"PC1 ({ratio[0]:.0%} of variance)", fill=(0, 0, 0))
    d.text((5, m - 20), f"PC2 ({ratio[1]:.0%})", fill=(0, 0, 0))
    for k, name in enumerate(names if legend_w else []):
        y = m + 18 * k
        d.rectangle([size + 5, y, size + 17, y + 12], fill=colour[name])
        d.text((size + 22, y), name[:20] or "(root)", fill=(0, 0, 0))
    return np.asarray(img)

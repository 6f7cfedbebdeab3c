"""What an image carries beside its pixels: the ICC profile, EXIF and XMP, as bytes ({'icc', 'exif',
'xmp'}).  Taken from a decoded source (:func:`metadata_of`: the ICC profile only when its colour
space is that of the pixels, the EXIF less the orientation, which decoding applies), and written
into PNG, JPEG, WebP and TIFF outputs (:func:`save_metadata_options`; XMP: PNG, JPEG and WebP)."""

from __future__ import annotations

from PIL import Image as PILImage


def _icc_space(icc: bytes) -> str:
    """The data colour space of an ICC profile ('RGB', 'GRAY', 'CMYK', ...), from its header."""
    return icc[16:20].decode("ascii", "replace").strip() if len(icc) >= 128 else ""


def metadata_of(im: PILImage.Image, mode: str) -> dict:
    """What an image carries beside its pixels: 'icc' (only where its colour space is the one the
    pixels end in), 'exif' (the orientation already removed by exif_transpose; left out when
    nothing else is in it) and 'xmp', as bytes."""
    out = {}
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and icc and _icc_space(icc) == ("GRAY" if mode in ("L", "LA") else "RGB"):
        out["icc"] = icc
    exif = im.info.get("exif")
    if isinstance(exif, bytes) and exif:
        try:
            tags = im.getexif()
            keep = len(tags) > 0 or bool(tags.get_ifd(0x8769))
        except Exception:  # noqa: BLE001 - unreadable EXIF is carried as it is
            keep = True
        if keep:
            out["exif"] = exif
    xmp = im.info.get("xmp", im.info.get("XML:com.adobe.xmp"))
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes) and xmp:
        out["xmp"] = xmp
    return out


def save_metadata_options(fmt: str, metadata: dict) -> dict:
    """Pillow save options that write `metadata` into a file of format `fmt`."""
    opts: dict = {}
    if not metadata or fmt == "bmp":
        return opts
    if "icc" in metadata:
        opts["icc_profile"] = metadata["icc"]
    if "exif" in metadata:
        opts["exif"] = metadata["exif"]
    if "xmp" in metadata:
        if fmt == "png":
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata["xmp"].decode("utf-8", "replace"), zip=False)
            opts["pnginfo"] = info
        elif fmt in ("jpeg", "webp"):
            opts["xmp"] = metadata["xmp"]
    return opts

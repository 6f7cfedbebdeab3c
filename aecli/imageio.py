"""The image input/output of aecli, as one module (its home before aecli/images/ and aecli/atomic.py).

Kept for the code that still imports it (aecli/codec/, benchmarks/, scripts/, the tests); new code
imports from where each job lives:

    aecli/images/decode.py    read_bytes, read_image, decode_image, the pixel limit
    aecli/images/encode.py    encode_image, save_options, format_from_path, WRITE_FORMATS
    aecli/images/image.py     Image
    aecli/images/walk.py      walk_images, IMAGE_EXTS
    aecli/atomic.py           write_output, check_output (safe writing)
    aecli/batch.py            mirror_path (planning a folder batch)
"""

from __future__ import annotations

from .atomic import check_output, write_output
from .batch import mirror_path
from .errors import OutputExists, UserError
from .images.decode import (DEFAULT_PIXEL_LIMIT, MAX_PIXELS, PIXELS_ENV, decode_image, pixel_limit, pixels_from_env,
                            read_bytes, read_image)
from .images.encode import WRITE_FORMATS, encode_image, format_from_path, save_options
from .images.image import Image
from .images.walk import IMAGE_EXTS, walk_images

__all__ = [
    "UserError",
    "OutputExists",
    "IMAGE_EXTS",
    "WRITE_FORMATS",
    "MAX_PIXELS",
    "DEFAULT_PIXEL_LIMIT",
    "PIXELS_ENV",
    "Image",
    "read_bytes",
    "decode_image",
    "read_image",
    "pixel_limit",
    "pixels_from_env",
    "encode_image",
    "save_options",
    "format_from_path",
    "check_output",
    "write_output",
    "walk_images",
    "mirror_path",
]

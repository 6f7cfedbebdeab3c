"""Images in and out: what aecli does with the user's image files.

    image.py     Image: decoded pixels, alpha, mode, source bits, metadata; to and from Pillow arrays
    decode.py    reading files and stdin, decoding (the reading policy), the pixel limit
    metadata.py  ICC profile, EXIF and XMP: taken from a source, written into an output
    encode.py    encoding (the formats aecli writes, save options), the format of an output name
    walk.py      the image files below a folder (IMAGE_EXTS)

Writing bytes to a file, stdout or a device, safely, is aecli/atomic.py's job; planning a folder
batch (mirrored names, skip-existing) is aecli/batch.py's.  This package imports nothing itself,
so that listing a folder (walk.py: standard library only) loads neither numpy nor Pillow.
"""

"""The learned image codec: an autoencoder whose latents are entropy-coded into .lat files.

    api.py           Codec, the public face: load a model, compress an Image, decompress a file
    weights.py       a model's files -> the checked torch model and its tensors (checks.py, model.py)
    transforms.py    analysis g_a and synthesis g_s, float and fixed point (intnet.py), tiled
    factorized.py    where y is coded, one file per kind of model: y alone, a table per channel;
    hyperprior.py      z, then y given z (the integer hyper-synthesis);
    checkerboard.py    z, then y in two halves, the second given the first (integer context model);
    fitted/            and a codec whose networks are fitted to each image (fitted/stream.py)
    coding.py        range coding of integer symbols with the stored tables, escapes (numpy only)
    levels.py        qualities and coding scales; rate.py: the scale by rate-distortion cost, the
                     quality that fits a file-size budget; refine.py: latents fitted per image (--effort)
    latfile.py       the .lat file as compress writes it: the latent streams, then the alpha plane
    decoding.py      what decompress checks of a file first, and its alpha plane (no torch)
    numpy_decoder.py the bundled models' decoder in numpy (decompress without torch)
    files.py         what `aecli compress` and `decompress` do with files, pipes and folders

Only files.py, latfile.py, decoding.py, numpy_decoder.py, levels.py and coding.py may be
imported without torch.
"""

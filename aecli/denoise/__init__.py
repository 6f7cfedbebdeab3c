"""Image denoising with a U-Net-shaped denoising autoencoder.

    model.py   the network: U-Net with skip connections, residual output, noise-level map input
    noise.py   synthetic noise (Gaussian, Poisson-Gaussian) and the noise-level estimate (numpy only)
    api.py     Denoiser: load a model, denoise an Image (tiled, alpha kept, L in -> L out)
    files.py   what `aecli denoise` and `aecli noise` do with files, pipes and folders
    train.py   its training: options, noise, loss, validation, export (aecli/train/loop.py drives it)

Only noise.py and files.py may be imported without torch; api.py and model.py import it.
"""

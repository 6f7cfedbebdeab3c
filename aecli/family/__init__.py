"""The autoencoder family for small images: dense, conv, VAE, sparse, contractive, denoising.

models.py   the networks and their penalties        data.py     image folders as tensors and labels
api.py      load a trained model; embed, score, reconstruct, sample, interpolate
files.py    what the CLI commands do with files      pictures.py image grids and the 2-D code map
train.py    its training: options, loss, validation, export (aecli/train/loop.py drives it)
"""

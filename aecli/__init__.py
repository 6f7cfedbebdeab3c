"""aecli: compress and denoise images with convolutional autoencoders, from the shell."""

__version__ = "0.1.0"

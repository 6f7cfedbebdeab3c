"""Bundled model weights: NAME.safetensors + NAME.json pairs."""

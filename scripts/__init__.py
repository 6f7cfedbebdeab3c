"""Scripts that made or maintain the bundled models and the test vectors (not installed with aecli).

Run them from the repository root as modules, so that they use this checkout's aecli:

    python -m scripts.extend_qualities CKPT --out DIR   lower quality levels for a trained codec
    python -m scripts.fit_context CKPT --out DIR        a checkerboard context model for a trained codec
    python -m scripts.widen_codec CKPT --n N --out DIR  wider transforms, the same function
    python -m scripts.slim_checkpoint SRC DST           a checkpoint without the optimizers' moments
    python -m scripts.retire_weights NAME               keep a model's weights for decoding only
    python -m scripts.make_test_vectors                 regenerate tests/vectors
    python -m scripts.denoise_picture                   the README's denoising picture
    python -m scripts.aerials_holdout, aerials_table    the figures of docs/aerials.md

derived.py holds what extend_qualities and fit_context share.  The *.sh files are the training
recipes of the bundled weights (bash scripts/train_codec.sh, ...).
"""

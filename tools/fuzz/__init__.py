"""Fuzz the `.lat` reader and the decoder behind `aecli decompress` with mutated files.

    python -m tools.fuzz --cases 100000 --seed 1 --out docs/results/fuzz.json

A seed corpus of valid files (tests/vectors/small.lat plus files the harness compresses
itself: 1x1 and odd sizes, RGB / L / RGBA / LA, every quality, a hyperprior and a
factorized model) is mutated case by case: blind byte-level mutations (bit flips, byte
replacements, truncations, extensions, insertions, deletions, splices, random data) and
field-aware ones (width/height varints, their encodings, mode, quality, version, name and
its length, fingerprint, stream count, stream lengths, and the payloads themselves with the
lengths kept consistent).  Most mutations recompute the CRC-32, so that corrupt payloads get
past the checksum and reach the entropy decoder and the synthesis transform.

Each case runs the real reader (`aecli.format.unpack`) and, for a file that parses (and with
probability --decode-fraction), what `aecli decompress` does next: find the model named in
the file (`codec_for`), `Codec.decompress`, encode the image as PNG.  Outcomes:

* expected rejection: the exception the CLI turns into a one-line error (UserError, or a
  FormatError from the reader, which `_decompress_one` converts to UserError);
* crash: any other exception (it would print a traceback); the input is saved under
  --crash-dir and its hex recorded in the JSON;
* hang: the case ran past --time-limit (SIGALRM; the exception derives from BaseException so
  that no `except Exception` in the library can swallow it);
* over-allocation: the peak of traced allocations (tracemalloc: Python objects and numpy
  buffers, not torch tensors) during the reader or the decoder exceeded the bound derived
  from the header (see `Bounds`); and peak RSS (ru_maxrss, which does include torch) may not
  grow past the baseline by more than `rss_factor` times that bound plus a slack.  A flagged
  case is diagnosed (`lat._diagnose`, `lat.replay_flagged`): the lines whose memory grew since the
  start, the case run again at once, and its input replayed in a fresh process; the exit status
  counts only flags that come back there.

`--replay FILE...` runs the same checks on given files (e.g. saved crashes) and prints them.
`--target model` fuzzes model files (JSON and weights) instead (tools/fuzz/models.py).
The long runs are not part of the test suite; tests/test_fuzz.py runs a few hundred cases as a
smoke test, importing these modules:

    harness.py          the code under test, one guarded call, classifying and counting outcomes
    seeds.py            the seed models, the valid .lat files and the model files they give
    lat_mutations.py    mutations of .lat files (blind and field-aware)
    lat.py              --target lat: bounds, one case, a run, replays
    model_mutations.py  mutations of model files (JSON and weights)
    models.py           --target model: the stages, one case, a run, replays
    __main__.py         the command line (run from the repository root: python -m tools.fuzz --help)
"""


"""Where the tools find things: the repository, its documents and recorded results, and the data
sets and published reference numbers, which are not in the repository.

The data live in ``../shared`` beside the checkout (``SHARED``): ``SHARED_DATA`` holds the image
sets (Kodak24, CBSD432, CBSD68, CC15, FashionMNIST, ...), ``SHARED_REFERENCE`` the published curves
and tables the benchmarks compare with.  Every tool that reads them takes the folder as an option
(``--data``, ``--published``) whose default is one of these.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"  # what the benchmarks write: JSON, CSV, plots and their generated tables
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
SHARED_REFERENCE = SHARED / "reference"

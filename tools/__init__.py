"""Library code of the tools around aecli: what tests, benchmarks and scripts share, and nothing the
product needs (this package is not installed with aecli; see docs/README.md).

    tools/paths.py    where the repository, docs/results and the data beside the checkout are
    tools/fuzz/       the fuzz harness of `.lat` files and model files (`python -m tools.fuzz`)
"""

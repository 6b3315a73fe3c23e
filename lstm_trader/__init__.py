"""The front door: the `lstm-trader` command line and the Python API (`Experiment`, `Result`).

Every command parses its options, calls one library function and prints what it returns; nothing
below imports this package. The API is loaded on first use, so `lstm-trader --help` stays fast.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={"api": ["Experiment", "Result"]})

"""Reports of a run dir: QuantStats tear sheets, forecast plots and index.html. Never trains or trades."""

from __future__ import annotations

import lazy_loader

# Names are imported on first use (SPEC 1's lazy loading), so importing one light submodule and the
# CLI's start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "build": ["build_reports", "prepare_workers"],
        "errors": ["ReportError"],
    },
)

"""Reports of a run dir: QuantStats tear sheets, forecast plots and index.html. Never trains or trades."""

from __future__ import annotations

import importlib

# Names are imported on first use (PEP 562), so importing one light submodule and the CLI's
# start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
_EXPORTS = {
    "build_reports": "reports.build",
    "prepare_workers": "reports.build",

    "ReportError": "reports.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

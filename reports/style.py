"""One explicit chart style for every PNG, whichever command draws it and whatever was imported
first (QuantStats changes matplotlib's global rcParams when it is imported)."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402

import reports.quiet  # noqa: F401  (Agg backend, quiet fonts)
from reports.derive import COLORS  # noqa: E402  (the interactive charts use the same colours)

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "savefig.facecolor": "white",
    "axes.prop_cycle": plt.cycler(color=COLORS),
}


def styled():
    """A context that starts from matplotlib's defaults and applies STYLE: the same look every time."""
    return plt.style.context(["default", STYLE])

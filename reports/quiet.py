"""Matplotlib set up once for reports: no GUI backend, no font or tick-label noise in the terminal."""

from __future__ import annotations

import logging
import sys
import warnings

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend: Result.plot() shows there
    matplotlib.use("Agg")


def quiet_matplotlib() -> None:
    # QuantStats asks for Arial, which machines without MS fonts lack: matplotlib then logs a
    # "findfont" warning per text element. DejaVu Sans stands in silently.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    matplotlib.rcParams["font.family"] = "DejaVu Sans"
    warnings.filterwarnings("ignore", module="quantstats")
    warnings.filterwarnings("ignore", message=".*set_ticklabels.*")
    warnings.filterwarnings("ignore", message=".*findfont.*")


quiet_matplotlib()

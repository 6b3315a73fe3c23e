"""What a run was made from, recorded in its metrics.json: package versions, the code's commit and
a fingerprint of every bar it read. The report shows it, so any result can be traced and rerun."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from forecasting.hashing import content_hash

PACKAGES = (
    "lstm-trader",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "backtrader",
    "quantstats",
    "pandas",
    "numpy",
    "scikit-learn",
    "ta",
    "arch",
    "optuna",
    "plotly",
)


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    if "tensorflow-cpu" in found:  # the CPU wheel also installs the `tensorflow` name: show one
        found.pop("tensorflow", None)
    return found


def code_commit() -> str | None:
    """The git commit of the code that ran, with '+dirty' when it had uncommitted changes; None when
    the package is not a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def bars_sha256(prices: dict[str, pd.DataFrame]) -> str:
    """A hash of every bar (dates and values) of every ticker the run read."""
    return content_hash(None, [(ticker, prices[ticker]) for ticker in sorted(prices)], named=True)


def provenance(prices: dict[str, pd.DataFrame]) -> dict:
    return {
        "versions": package_versions(),
        "commit": code_commit(),
        "data_sha256": bars_sha256(prices),
        "bars": {
            ticker: [frame.index[0].date().isoformat(), frame.index[-1].date().isoformat(), len(frame)]
            for ticker, frame in prices.items()
        },
    }

"""QuantStats HTML tear sheets, made to work offline from disk."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import reports.quiet  # noqa: F401

import pandas as pd  # noqa: E402

_FAVICON = re.compile(r'<link[^>]*rel="shortcut icon"[^>]*>\s*')


def tearsheet(returns: pd.Series, path: Path, title: str, benchmark: pd.Series | None = None,
              benchmark_title: str = "buy_and_hold") -> Path:
    """Write QuantStats' full HTML tear sheet of `returns` (daily), benchmarked when given."""
    import quantstats as qs

    returns = returns.rename(str(returns.name or "Strategy")).astype("float64")
    returns.index = pd.DatetimeIndex(returns.index).tz_localize(None)
    if benchmark is not None:
        benchmark = benchmark.rename(benchmark_title).astype("float64").reindex(returns.index).fillna(0.0)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(returns, benchmark=benchmark, title=title, output=str(tmp), periods_per_year=252,
                        figfmt="svg", match_dates=False)  # keep every out-of-sample day, as the comparison does
    html = tmp.read_text(encoding="utf-8")
    tmp.unlink()
    # The template's favicon is fetched from the web; a report must open offline without requests.
    path.write_text(_FAVICON.sub("", html), encoding="utf-8")
    return path

"""User-facing errors of the orchestration layer (config, run dirs, backtests)."""

from __future__ import annotations

from forecasting.errors import ForecastingError


class BacktestError(ForecastingError):
    """Bad config, run dir or backtest input; printed by the CLI as one line with a hint."""


class ConfigError(BacktestError):
    """A config file or `--set` override that cannot be used."""

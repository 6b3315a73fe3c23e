"""What a paper account trades and how it decides: the config's strategy entry it trades (checked against
the forecasts the account makes) and a per-ticker target at a close, by the backtest's own rules
(`strategies.decision`), so that a replay makes the backtest's decisions."""

from __future__ import annotations

import pandas as pd

from backtests.books import is_universe_strategy, traded_forecast
from backtests.config import ExperimentConfig, StrategySpec
from backtests.engine import BrokerSpec
from backtests.errors import BacktestError
from forecasting.tasks import task_of
from strategies.decision import SignalParams, Sizing, VolParams, signal_target, vol_target
from trading.models import Forecast

# the rules whose decision the account makes with the backtest's own
PAPER_STRATEGIES = ("lstm_signal", "xs_rank", "vol_target")
VOL_FORECAST = "vol_lstm"  # what lstm_signal's vol_forecast names: the account's volatility network, as in
# `backtest --volatility` (a volatility run's models joined as vol_<model>)


def paper_strategy(config: ExperimentConfig, volatility: ExperimentConfig | None = None) -> StrategySpec:
    """The strategy entry the account trades; it must trade the LSTM's forecast, and a forecast of the kind
    it reads (a return, or `vol_target`'s variance). `volatility`: the account's volatility config, which
    `lstm_signal`'s `vol_forecast` sizes by."""
    wanted = config.paper.strategy
    forecasts = task_of(config.model).forecasts
    for spec in config.strategies:
        if spec.title == wanted or spec.name == wanted:
            if traded_forecast(spec) != "lstm":
                raise BacktestError(
                    f"paper.strategy '{wanted}' does not trade the LSTM's forecast",
                    "paper accounts trade lstm_signal, xs_rank or vol_target with forecast = lstm "
                    "(params from [[strategies]])",
                )
            if spec.name not in PAPER_STRATEGIES:
                raise BacktestError(
                    f"paper.strategy '{wanted}' is a {spec.name} strategy, which paper accounts do not trade",
                    "paper accounts trade " + ", ".join(PAPER_STRATEGIES),
                )
            reads = "variance" if spec.name == "vol_target" else "return"
            if reads != forecasts:
                raise BacktestError(
                    f"paper.strategy '{wanted}' trades a {reads} forecast, but the model forecasts {forecasts}",
                    'vol_target trades a volatility config (model.target = "realized_vol", configs/volatility.toml); '
                    "lstm_signal and xs_rank a return config",
                )
            _check_vol_forecast(wanted, spec, volatility)
            if is_universe_strategy(spec) and not task_of(config.model).universe:
                raise BacktestError(
                    f"paper.strategy '{wanted}' ranks a universe, but the model is per ticker",
                    "set model.scope = global (a universe model) for an xs_rank account",
                )
            return spec
    if wanted == "lstm_signal" and forecasts == "return":
        return StrategySpec(name="lstm_signal")
    raise BacktestError(
        f"paper.strategy '{wanted}' is not among the config's [[strategies]]",
        "name an lstm_signal, xs_rank or vol_target entry by its label or name",
    )


def _check_vol_forecast(wanted: str, spec: StrategySpec, volatility: ExperimentConfig | None) -> None:
    """`lstm_signal` sized by a variance forecast needs the account's volatility network, and only that."""
    named = spec.params.get("vol_forecast")
    if named is None:
        if volatility is not None:
            raise BacktestError(
                f"paper.strategy '{wanted}' does not size by a volatility forecast, so --volatility has nothing to do",
                f'set vol_forecast = "{VOL_FORECAST}" and a target_vol in its params, or leave --volatility out',
            )
        return
    if named != VOL_FORECAST:
        raise BacktestError(
            f"paper.strategy '{wanted}' sizes by the '{named}' forecast; a paper account serves one volatility "
            f"network, '{VOL_FORECAST}'",
            f'set vol_forecast = "{VOL_FORECAST}" (the LSTM of the account\'s --volatility config)',
        )
    if not spec.params.get("target_vol"):
        raise BacktestError(
            f"paper.strategy '{wanted}' names vol_forecast but no target_vol, so nothing would be sized by it",
            f'give it a volatility target too, e.g. params = {{ target_vol = 0.10, vol_forecast = "{VOL_FORECAST}" }}',
        )
    if volatility is None:
        raise BacktestError(
            f"paper.strategy '{wanted}' sizes by a volatility forecast, which this account does not make",
            "create the account with a volatility config beside: lstm-trader paper init CONFIG "
            "--volatility configs/volatility.toml",
        )


def signal_params(spec: StrategySpec) -> SignalParams:
    return SignalParams.of(spec.params)


def sizing_for(spec: StrategySpec, broker: BrokerSpec) -> Sizing:
    return Sizing.of(spec.params, broker)


def ticker_target(
    spec: StrategySpec,
    forecast: Forecast,
    sized_by: Forecast | None,
    frame: pd.DataFrame,
    position: tuple[float, float],
    stopped: float | None,
) -> tuple[float, float | None]:
    """A per-ticker rule's target exposure at this close, as the backtest's strategy decides it: the
    forecast rule (`signal_target`, sized by the variance forecast `sized_by` where it reads one), or
    volatility targeting by the traded variance forecast. `frame`: the ticker's bars up to this close;
    `position`: (shares, entry price). Returns the target and the stop-loss state."""
    variance = sized_by.variance() if sized_by is not None else None
    if spec.name == "vol_target":
        return vol_target(VolParams.of(spec.params), variance), None
    rule = signal_params(spec)
    held, entry = position
    return signal_target(
        forecast.y_pred,
        rule,
        position=held,
        entry_price=entry,
        closes=frame["close"].to_numpy()[-(rule.vol_window + 1) :].tolist(),
        stopped=stopped,
        forecast_variance=variance if rule.vol_forecast else None,
    )

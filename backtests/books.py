"""Which strategies a run trades on which books (a ticker, or the portfolio of a universe), backtesting
them all, and what the trial ledger records of an evaluation (the LSTM strategies' Sharpe, the benchmark's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backtests.config import ExperimentConfig, StrategySpec
from backtests.engine import BacktestResult, run_backtest
from backtests.errors import BacktestError
from backtests.rundir import write_csv, write_parquet
from backtests.stats import comparison_table, excess_returns, per_period_sharpe
from backtests.trials import (
    TrialCount,
    TrialLedger,
    config_hash,
    data_fingerprint,
    legacy_fingerprint,
)
from forecasting.tasks import task_of
from strategies import forecast_model, resolve

PORTFOLIO = "portfolio"


def benchmark_name(config: ExperimentConfig) -> str:
    """What every strategy is compared with: buy-and-hold of its ticker, or for a universe model the
    universe held in equal weights, rebalanced on the portfolio's schedule."""
    return "equal_weight" if task_of(config.model).universe else "buy_and_hold"


def strategies_with_benchmark(config: ExperimentConfig) -> list[StrategySpec]:
    specs = list(config.strategies)
    benchmark = benchmark_name(config)
    if not any(s.name == benchmark and _schedule_only(s, config) for s in specs):
        specs.append(benchmark_spec(config))
    titles = [s.title for s in specs]
    duplicated = {t for t in titles if titles.count(t) > 1}
    if duplicated:
        raise BacktestError(
            f"two strategies are both called '{sorted(duplicated)[0]}'", 'give one of them a different label = "..."'
        )
    return specs


def benchmark_spec(config: ExperimentConfig) -> StrategySpec:
    """The benchmark's entry: the equal-weight universe rebalances as often as the first ranked portfolio."""
    if benchmark_name(config) == "buy_and_hold":
        return StrategySpec(name="buy_and_hold")
    every = next((s.params["rebalance_every"] for s in config.strategies if "rebalance_every" in s.params), None)
    return StrategySpec(name="equal_weight", params={} if every is None else {"rebalance_every": every})


def _schedule_only(spec: StrategySpec, config: ExperimentConfig) -> bool:
    return spec.params == benchmark_spec(config).params


def is_universe_strategy(spec: StrategySpec) -> bool:
    """Whether a strategy decides a whole universe at once (xs_rank, equal_weight) rather than each ticker."""
    cls, _ = resolve(spec.name, spec.params)
    return bool(getattr(cls, "universe", False))


def produced_models(config: ExperimentConfig) -> tuple[str, ...]:
    """The models whose rows the config's walk-forward writes: what a strategy's `forecast` may name."""
    return task_of(config.model).models()


def check_forecasts(config: ExperimentConfig, beside: tuple[str, ...] = ()) -> None:
    """Every strategy trades a forecast the run will write (or one made `beside` it, for `vol_forecast`),
    checked before anything trains."""
    from forecasting.errors import did_you_mean

    task = task_of(config.model)
    models = task.models()
    for spec in config.strategies:
        if spec.params.get("vol_forecast") and spec.params["vol_forecast"] not in beside:
            raise BacktestError(
                f"strategy '{spec.title}' sizes by the '{spec.params['vol_forecast']}' volatility forecast, "
                "which a run of one target does not make",
                "run the volatility config too, then: lstm-trader backtest RUN/predictions.parquet --volatility "
                "VOL_RUN/predictions.parquet",
            )
        wanted = traded_forecast(spec)
        if wanted is not None and task.forecasts == "variance" and spec.name != "vol_target":
            raise BacktestError(
                f"strategy '{spec.title}' trades a return forecast, but this run forecasts variance "
                "(model.target = realized_vol)",
                "trade it with vol_target (see configs/volatility.toml), or leave it out",
            )
        if spec.name == "vol_target" and wanted is not None and task.forecasts != "variance":
            raise BacktestError(
                f"strategy '{spec.title}' sizes by a variance forecast, but this run forecasts returns",
                'run it on a volatility config (model.target = "realized_vol", see configs/volatility.toml)',
            )
        if wanted is not None and wanted not in models:
            raise BacktestError(
                f"strategy '{spec.title}' trades the '{wanted}' forecast, which this run does not make",
                did_you_mean(wanted, models, "its models: " + ", ".join(models)),
            )


def check_universe_strategies(config: ExperimentConfig, n_tickers: int) -> None:
    """A ranked portfolio's k against the universe's size, before anything is trained or written."""
    from strategies.decision import XsParams, check_universe

    for spec in config.strategies:
        if spec.name == "xs_rank":
            check_universe(XsParams.of(spec.params), n_tickers)


def lstm_strategies(config: ExperimentConfig) -> set[str]:
    """Labels of the strategies that trade the LSTM's predictions: the ones the trial ledger deflates."""
    return {spec.title for spec in strategies_with_benchmark(config) if traded_forecast(spec) == "lstm"}


def traded_forecast(spec: StrategySpec) -> str | None:
    """Which model's rows of the predictions table a strategy trades (None for rule-based ones)."""
    cls, params = resolve(spec.name, spec.params)
    return forecast_model(cls, params)


def silent_strategies(predictions: pd.DataFrame, config: ExperimentConfig) -> list[str]:
    """'strategy on ticker' for each forecast-trading strategy whose forecast has no finite value on that
    ticker: it never had a signal, so its row of the comparison is cash, not a verdict on the forecast."""
    finite = predictions.assign(ok=np.isfinite(pd.to_numeric(predictions["y_pred"], errors="coerce")))
    counts = finite.groupby(["model", "ticker"])["ok"].sum()
    silent = []
    for spec in config.strategies:
        model = traded_forecast(spec)
        if model is None:
            continue
        silent += [
            f"{spec.title} on {ticker} (no finite '{model}' prediction)"
            for ticker in dict.fromkeys(predictions["ticker"])
            if not counts.get((model, ticker), 0)
        ]
    return silent


def run_strategies(
    prices: dict[str, pd.DataFrame], predictions: pd.DataFrame, config: ExperimentConfig
) -> list[tuple[str, BacktestResult]]:
    """Every per-ticker strategy on every ticker, plus an equal-weight LSTM portfolio when there are several
    tickers; a universe strategy (xs_rank, equal_weight) once, on the whole universe (the portfolio book)."""
    results = []
    specs = strategies_with_benchmark(config)
    universe = [s for s in specs if is_universe_strategy(s)]
    specs = [s for s in specs if not is_universe_strategy(s)]
    for spec in universe:
        results.append(
            (PORTFOLIO, run_backtest(prices, predictions, spec.name, config.broker, spec.params, label=spec.title))
        )
    for ticker in prices:
        for spec in specs:
            results.append(
                (
                    ticker,
                    run_backtest(
                        {ticker: prices[ticker]}, predictions, spec.name, config.broker, spec.params, label=spec.title
                    ),
                )
            )
    if len(prices) > 1 and not universe:
        for spec in specs:
            if spec.name in ("lstm_signal", "buy_and_hold"):
                results.append(
                    (
                        PORTFOLIO,
                        run_backtest(prices, predictions, spec.name, config.broker, spec.params, label=spec.title),
                    )
                )
    return results


def compare_results(
    results: list[tuple[str, BacktestResult]],
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    config: ExperimentConfig,
    ledger: TrialLedger | None = None,
    ledger_key: str | None = None,
    kind: str = "run",
    params: dict | None = None,
) -> tuple[pd.DataFrame, TrialCount]:
    """The comparison table. With a `ledger`, the evaluation is recorded under `ledger_key` first and
    the LSTM strategies' deflated Sharpe counts every configuration in the ledger on the same data."""
    labels = lstm_strategies(config)
    trials = TrialCount(1, 0.0)
    if ledger is not None and ledger_key is not None:
        fingerprint = data_fingerprint(prices, config.data.start)
        # rows merged from an older ledger were recorded under the data's older fingerprint: they count too
        ledger.adopt(legacy_fingerprint(config.data.source, config.data.start, config.data.end, prices), fingerprint)
        chosen = lstm_result(results, labels)
        benchmark = benchmark_result(results, chosen, config)
        ledger.add(
            ledger_key,
            kind,
            fingerprint,
            trial_config_hash(predictions, config),
            params or network_params(config),
            "test",
            lstm_sharpe(results, labels),
            lstm_rmse(predictions),
            excess_returns(chosen[1]) if chosen else None,
            excess_returns(benchmark) if benchmark else None,
            config.data.source,
        )
        count = ledger.count(fingerprint)
        trials = TrialCount(count.n, count.variance, ledger.overfitting(fingerprint))
    return comparison_table(results, labels, trials.n, trials.variance), trials


def trial_config_hash(predictions: pd.DataFrame, config: ExperimentConfig) -> str:
    """What makes one configuration: the LSTM's predictions and the rules and costs that trade them.

    Backtesting the same predictions again with the same costs is not a new trial; a new seed,
    network or walk-forward (new predictions) or new costs or thresholds is.
    """
    lstm = predictions[predictions["model"] == "lstm"] if "model" in predictions else predictions
    content = pd.util.hash_pandas_object(lstm[[c for c in ("date", "ticker", "y_pred") if c in lstm]], index=False)
    labels = lstm_strategies(config)
    rules = [s.model_dump(mode="json") for s in config.strategies if s.title in labels]
    return config_hash(
        {"predictions": int(content.sum()), "broker": config.broker.model_dump(mode="json"), "strategies": rules}
    )


def backtest_all(
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    config: ExperimentConfig,
    ledger: TrialLedger | None = None,
    ledger_key: str | None = None,
) -> tuple[list[tuple[str, BacktestResult]], pd.DataFrame, TrialCount]:
    """`run_strategies`, then `compare_results`."""
    results = run_strategies(prices, predictions, config)
    return (results, *compare_results(results, prices, predictions, config, ledger, ledger_key))


def network_params(config: ExperimentConfig) -> dict:
    """The settings a ledger row shows for a run (the hash is over the predictions themselves)."""
    return {
        "model": config.model.model_dump(mode="json"),
        "walk_forward": config.walk_forward.model_dump(mode="json"),
        "seed": config.seed,
    }


def lstm_result(results: list[tuple[str, BacktestResult]], labels: set[str]) -> tuple[str, BacktestResult] | None:
    """The (book, result) the ledger records: the first LSTM strategy, on the portfolio book when there is one."""
    chosen = [(b, r) for b, r in results if r.strategy in labels and b == PORTFOLIO] or [
        (b, r) for b, r in results if r.strategy in labels
    ]
    return chosen[0] if chosen else None


def benchmark_result(
    results: list[tuple[str, BacktestResult]], chosen: tuple[str, BacktestResult] | None, config: ExperimentConfig
) -> BacktestResult | None:
    """The benchmark on the recorded strategy's book (buy-and-hold, or the equal-weight universe)."""
    if chosen is None:
        return None
    wanted = benchmark_name(config)
    return next((r for b, r in results if b == chosen[0] and r.strategy == wanted), None)


def lstm_sharpe(results: list[tuple[str, BacktestResult]], labels: set[str]) -> float | None:
    """Per-day Sharpe of the first LSTM strategy (on the portfolio book when there is one)."""
    chosen = lstm_result(results, labels)
    return per_period_sharpe(excess_returns(chosen[1])) if chosen else None


def deflated_again(run: Path, book: str, strategy: str, cash_rate: float, trials: TrialCount) -> float:
    """The DSR of a run's strategy deflated by `trials` (a count taken after later evaluations), from the
    daily returns the run wrote."""
    from backtests.stats import deflated_sharpe, trial_variance
    from strategies.decision import per_bar_rate

    table = pd.read_parquet(run / "returns.parquet")
    returns = table[(table["ticker"] == book) & (table["strategy"] == strategy)]["return"]
    excess = returns.fillna(0.0).reset_index(drop=True) - per_bar_rate(cash_rate)
    return deflated_sharpe(excess, trials.n, trial_variance(excess, trials.variance))


def lstm_rmse(predictions: pd.DataFrame) -> float | None:
    if not {"y_true", "y_pred", "model"} <= set(predictions):
        return None
    rows = predictions[predictions["model"] == "lstm"].dropna(subset=["y_true", "y_pred"])
    return float(((rows["y_true"] - rows["y_pred"]) ** 2).mean() ** 0.5) if len(rows) else None


def returns_table(results: list[tuple[str, BacktestResult]]) -> pd.DataFrame:
    """Daily returns of every result as one long table (date, ticker = the book, strategy, return)."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "date": result.returns.index,
                    "ticker": book,
                    "strategy": result.strategy,
                    "return": result.returns.to_numpy(),
                }
            )
            for book, result in results
        ],
        ignore_index=True,
    )


def write_backtests(run: Path, results: list[tuple[str, BacktestResult]], comparison: pd.DataFrame) -> None:
    equity, trades, fills = {}, [], []
    for ticker, result in results:
        equity[f"{ticker}:{result.strategy}"] = result.equity
        trades.append(result.trades.assign(strategy=result.strategy, book=ticker))
        fills.append(result.fills.assign(strategy=result.strategy, book=ticker))
    write_parquet(run / "returns.parquet", returns_table(results))
    write_csv(run / "equity.csv", pd.DataFrame(equity).rename_axis("date"), index=True)
    write_csv(run / "trades.csv", pd.concat(trades, ignore_index=True))
    write_csv(run / "fills.csv", pd.concat(fills, ignore_index=True))
    write_csv(run / "comparison.csv", comparison)


def fill_rule(results: list[tuple[str, BacktestResult]]) -> str:
    """How orders filled: at the next open, or at the next close where the data has no open."""
    rules = sorted({r.fill_rule for _, r in results})
    return " and ".join(rules) if rules else "next open"

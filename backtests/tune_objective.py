"""What one tuning trial is: the tuning span before the out-of-sample span, the inner walk-forward on it,
the suggested settings, and the objective Optuna optimises (the LSTM's validation MSE over the zero
forecast's, or its mean daily rank IC), reported as it goes so bad trials are pruned early."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from backtests.config import TUNABLE, ExperimentConfig, SearchRange, validate_config
from backtests.engine import run_backtest
from backtests.trials import TrialLedger
from forecasting.progress import Progress
from forecasting.tasks import task_of


def first_test_date(prices: dict[str, pd.DataFrame], config: ExperimentConfig) -> pd.Timestamp:
    """The earliest first out-of-sample date of the outer walk-forward over every ticker, for the
    smallest lookback the search space allows (a smaller lookback starts testing earlier)."""
    lookback = config.model.lookback
    if "lookback" in config.tune.space:
        lookback = min(lookback, int(config.tune.space["lookback"].low))
    model = config.model.model_copy(update={"lookback": lookback})
    return task_of(model).first_test_date(prices, config.walk_forward)


def tuning_span(
    prices: dict[str, pd.DataFrame], config: ExperimentConfig
) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    """Every ticker's bars strictly before the outer test span: all a trial is ever given."""
    first = first_test_date(prices, config)
    return {ticker: frame[frame.index < first] for ticker, frame in prices.items()}, first


def trial_config(config: ExperimentConfig, params: dict) -> ExperimentConfig:
    """The base config with a trial's parameters set (validated like any config)."""
    raw = config.model_dump(mode="json")
    for name, value in params.items():
        raw[TUNABLE[name][0]][name] = value
    return validate_config(raw, "tuned parameters")


def suggest(trial, space: dict[str, SearchRange]) -> dict:
    params = {}
    for name, spec in space.items():
        if spec.choices is not None:
            params[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.is_int:
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[name] = trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)
    return params


FOLD_STEP = 1000  # intermediate steps: epochs of the first fit are 0..epochs-1, inner folds 1000 + fold


class _Reporter(Progress):
    """Reports intermediate values to Optuna and prunes.

    The first fold's fit is most of a trial's cost, so it reports too: after each epoch, the
    validation-tail loss relative to always predicting no change. After each inner fold it reports
    the running MSE ratio of the objective. Both are "below 1 beats naive" ratios, on separate steps.
    """

    def __init__(self, trial, loss_is_a_u2: bool, objective: str = "mse_ratio") -> None:
        self.trial = trial
        self.loss_is_a_u2 = loss_is_a_u2
        self.objective = objective
        self.squared = {"lstm": 0.0, "naive": 0.0}
        self.daily_rank_ic: list[float] = []
        self.folds = 0

    def epoch(self, done: int, total: int, logs: dict | None = None) -> None:
        if self.objective != "mse_ratio":  # a loss ratio is no step towards a rank IC: nothing to report
            return
        if self.folds or not self.loss_is_a_u2 or not logs or not logs.get("val_zero_loss"):
            return
        self._report(logs["val_loss"] / logs["val_zero_loss"], done - 1, f"epoch {done} of the first fit")

    def predicted(self, ticker: str, fold: int, table: pd.DataFrame) -> None:
        for model in self.squared:
            rows = table[table["model"] == model]
            self.squared[model] += float(((rows["y_true"] - rows["y_pred"]) ** 2).sum())
        if self.objective == "rank_ic":
            from forecasting.xs_metrics import daily_cross_section

            daily = daily_cross_section(table[table["model"] == "lstm"])["rank_ic"].dropna()
            self.daily_rank_ic += daily.to_list()
        self.folds += 1
        self._report(self.value(), FOLD_STEP + self.folds - 1, f"inner fold {self.folds}")

    def value(self) -> float:
        """The objective so far: the MSE ratio, or the mean daily rank IC of the LSTM."""
        if self.objective == "rank_ic":
            return float(np.mean(self.daily_rank_ic)) if self.daily_rank_ic else float("nan")
        return self.ratio()

    def _report(self, value: float, step: int, where: str) -> None:
        import optuna

        if value != value:
            return
        self.trial.report(value, step)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", where)
            raise optuna.TrialPruned()

    def ratio(self) -> float:
        return self.squared["lstm"] / self.squared["naive"] if self.squared["naive"] > 0 else float("nan")


def inner_walk_forward(config: ExperimentConfig, span: dict[str, pd.DataFrame]):
    """The walk-forward run inside the tuning span: its first fold trains on
    `tune.inner_train_fraction` of the usable samples of the shortest ticker (of the universe's sessions
    for a global model), the rest is validation."""
    from forecasting.features import warmup_rows

    shortest = task_of(config.model).sessions(span)
    usable = shortest - warmup_rows(config.model.features) - config.model.lookback - config.model.horizon
    return config.walk_forward.model_copy(update={"min_train": max(10, int(usable * config.tune.inner_train_fraction))})


def make_objective(
    config: ExperimentConfig,
    span: dict[str, pd.DataFrame],
    study_name: str,
    ledger: TrialLedger,
    fingerprint: str,
    study_id: str | None = None,
) -> Callable:
    """The Optuna objective: one inner walk-forward on the tuning span per trial. Its ledger keys carry
    the study's own id (`study_id`), so two studies of one name never share a key."""
    from backtests.books import lstm_rmse, lstm_strategies, trial_config_hash
    from backtests.stats import per_period_sharpe
    from forecasting.tasks import walk_forward_predict

    study_id = study_id or study_name

    def objective(trial) -> float:
        import optuna

        params = suggest(trial, config.tune.space)
        cfg = trial_config(config, params)
        wf = inner_walk_forward(cfg, span)
        reporter = _Reporter(trial, task_of(cfg.model).predicts_log_return(), cfg.tune.objective)
        predictions = None
        try:
            predictions = walk_forward_predict(span, cfg.model, wf, seed=cfg.seed, progress=reporter)
        finally:
            if predictions is None:  # pruned or failed: still a configuration that was looked at
                ledger.add(
                    f"tune:{study_id}:{trial.number}",
                    "tune",
                    fingerprint,
                    f"tune:{study_id}:{trial.number}",
                    params,
                    "validation",
                    None,
                    None,
                )
        value = reporter.value()
        returns = _validation_returns(span, predictions, cfg, lstm_strategies(cfg))
        sharpe = per_period_sharpe(returns) if returns is not None else None
        rmse = lstm_rmse(predictions)
        trial.set_user_attr("validation_sharpe", sharpe)
        trial.set_user_attr("last_tuning_date", str(max(f.index[-1] for f in span.values()).date()))
        ledger.add(
            f"tune:{study_id}:{trial.number}",
            "tune",
            fingerprint,
            trial_config_hash(predictions, cfg),
            params,
            "validation",
            sharpe,
            rmse,
            returns,
            None,
            cfg.data.source,
        )
        if value != value:
            raise optuna.TrialPruned()
        return value

    return objective


def _validation_sharpe(span, predictions, cfg: ExperimentConfig, labels: set[str]) -> float | None:
    """Per-day Sharpe of the first LSTM strategy on the inner validation span (for the ledger)."""
    from backtests.stats import per_period_sharpe

    returns = _validation_returns(span, predictions, cfg, labels)
    return per_period_sharpe(returns) if returns is not None else None


def _validation_returns(span, predictions, cfg: ExperimentConfig, labels: set[str]) -> pd.Series | None:
    """Daily excess returns of the first LSTM strategy on the inner validation span (the ledger keeps them,
    for the PBO over the study's trials)."""
    from backtests.books import is_universe_strategy
    from backtests.stats import excess_returns

    spec = next((s for s in cfg.strategies if s.title in labels), None)
    if spec is None:
        return None
    if is_universe_strategy(spec):  # a ranked portfolio trades the whole universe
        return excess_returns(run_backtest(span, predictions, spec.name, cfg.broker, spec.params, label=spec.title))
    ticker = next(iter(span))
    result = run_backtest(
        {ticker: span[ticker]},
        predictions[predictions["ticker"] == ticker],
        spec.name,
        cfg.broker,
        spec.params,
        label=spec.title,
    )
    return excess_returns(result)

"""An account's predict role: the networks it serves (per ticker, or one for a universe), trained,
fine-tuned and saved on the walk-forward's own schedule, so a paper step predicts as the backtest did.

An account serves one network per ticker for the forecast its strategy trades (`model/`), and a second
one where the strategy is sized by a variance forecast it does not trade (`lstm_signal` with
`vol_forecast`: the account's `volatility.toml`, in `model-volatility/`). Each is a `Role`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtests.config import ExperimentConfig
from backtests.errors import BacktestError
from backtests.rundir import write_json
from forecasting.checkpoint import fingerprint, load_ensemble, save_ensemble
from forecasting.targets import return_variance, target_of
from forecasting.walkforward import Samples, WalkForwardModel, make_samples, make_split

if TYPE_CHECKING:
    from trading.account import StepReport

VOLATILITY = "volatility"  # the role of a second network that sizes the traded forecast


@dataclass(frozen=True)
class Role:
    """One network an account serves: `forecast` (what its strategy trades, from config.toml) or
    `volatility` (the variance forecast that sizes it, from volatility.toml), saved under `folder`."""

    name: str
    config: ExperimentConfig
    folder: Path

    def owner(self, ticker: str) -> str:
        """How the ledger's `models` table and `paper status` name this role's network of `ticker`."""
        return ticker if self.name == "forecast" else f"{ticker} ({self.name})"

    def pointers(self) -> list[tuple[str, Path]]:
        """(owner, current.json) of every network this role has saved."""
        return [(self.owner(p.parent.name), p) for p in sorted(self.folder.glob("*/current.json"))]


@dataclass(frozen=True)
class Forecast:
    """A role's forecast of one ticker at one close, as the predictions table holds it: `y_pred` (a log
    return, or the log of the next horizon's realized variance), the seeds' spread, the fold that made
    it and, for a variance forecast, the fold's `return_var_ratio` and horizon."""

    y_pred: float
    spread: float
    fold: int
    ratio: float | None = None
    horizon: int = 1

    def variance(self) -> float | None:
        """The next session's return variance it forecasts (None: a return forecast), as the backtest's
        `daily_return_variance` turns the same row into one."""
        if self.ratio is None:
            return None
        return float(return_variance(np.array([self.y_pred]), self.ratio, self.horizon)[0])


class AccountModels:
    """The model half of `trading.account.Account` (its folder, config and ledger are the account's)."""

    def _predict_universe(
        self, frames: dict[str, pd.DataFrame], day: pd.Timestamp, report: StepReport
    ) -> dict[str, Forecast]:
        """The global network's prediction of every ticker at this close (training the folds the schedule
        has reached first), with the backtest's own steps: `GlobalNetwork.train_panel` and `predict_panel`."""
        from forecasting.cross_section import build_panel, make_date_split

        panel = build_panel(frames, self.config.model)
        split = make_date_split(self.config.model, self.config.walk_forward)
        today = int(panel.calendar.get_loc(day))
        fold = split.fold_of(today)
        if fold is None:
            first = split.first_test()
            raise BacktestError(
                f"{day.date()} comes before the walk-forward's first prediction"
                + (f" ({panel.calendar[first].date()})" if first < len(panel.calendar) else ""),
                "start the account later, or lower walk_forward.min_train / load more history",
            )
        network = self._load_universe_model(panel)
        scaler = None
        while network.fold < fold:
            scaler = network.train_panel(panel, split, network.fold + 1)
            self._save_universe_model(network, panel, split)
            report.trained.append(network.fold)
        if scaler is None:
            from forecasting.cross_section import TickerScaler

            scaler = TickerScaler(panel, split.train_rows(panel, fold))
        rows = np.flatnonzero(panel.day == today)
        rows = rows[scaler.known(panel.ticker[rows])]
        mean, spread = network.predict_panel(panel, scaler, rows)
        return {
            panel.tickers[panel.ticker[r]]: Forecast(float(m), float(s), fold) for r, m, s in zip(rows, mean, spread)
        }

    def _load_universe_model(self, panel):
        from forecasting.cross_section import UNIVERSE, GlobalNetwork

        role = self.roles[0]
        if (role.name, UNIVERSE) in self._models:
            return self._models[role.name, UNIVERSE]
        c = self.config
        network = GlobalNetwork(c.model, c.walk_forward, c.seed)
        pointer = role.folder / UNIVERSE / "current.json"
        if pointer.is_file():
            state = json.loads(pointer.read_text())
            if state["key"] != self._model_key(role):
                raise BacktestError(
                    "the saved universe model was trained with other settings",
                    "the account's config.toml must not change; create a new account instead",
                )
            if _universe_hash(self.prices(), pd.Timestamp(state["trained_through"])) != state["bars"]:
                raise BacktestError(
                    f"the universe's data up to {state['trained_through'][:10]} changed since the model was trained "
                    "on it (a revised or re-adjusted history)",
                    "a split or a corrected history: create a new account to retrain on it",
                )
            network.ensemble = load_ensemble(role.folder / UNIVERSE / state["dir"], state["members"])
            network.fold = state["fold"]
        self._models[role.name, UNIVERSE] = network
        return network

    def _save_universe_model(self, network, panel, split) -> None:
        from forecasting.cross_section import UNIVERSE

        train = split.train_rows(panel, network.fold)
        through = pd.Timestamp(panel.known_at[train].max())
        first = panel.calendar[split.first_test() + network.fold * split.retrain_every]
        self._write_model(self.roles[0], UNIVERSE, network, through, first, _universe_hash(self.prices(), through))

    def _predict(self, role: Role, ticker: str, frame: pd.DataFrame, day: pd.Timestamp, report: StepReport) -> Forecast:
        """`role`'s forecast of `ticker` at the close of `day` (training the folds the schedule has reached
        first), as the walk-forward's row of that day: the same network, smearing and ratio."""
        model_spec, wf = role.config.model, role.config.walk_forward
        samples = make_samples(frame, model_spec, ticker)
        split = make_split(model_spec, wf)
        last = len(samples.dates) - 1
        fold = split.fold_of(last)
        if fold is None:
            first = samples.dates[split.first_test()] if split.first_test() < len(samples.dates) else None
            whose = "the" if role.name == "forecast" else f"the {role.name} network's"
            raise BacktestError(
                f"{ticker}: {day.date()} comes before {whose} walk-forward's first prediction"
                + (f" ({first.date()})" if first is not None else ""),
                "start the account later, or lower walk_forward.min_train / load more history"
                + ("" if role.name == "forecast" else " (--volatility-set, in a new account)"),
            )
        network = self._load_model(role, ticker, samples)
        while network.fold < fold:
            k = network.fold + 1
            network.train_fold(k, samples, split.train_rows(k))
            self._save_model(role, ticker, network, samples, split)
            report.trained.append(k)
        train = split.train_rows(fold)
        mean, spread = network.forecast(samples, train, np.array([last]))
        ratio = target_of(model_spec).return_var_ratio(samples, model_spec, train)
        return Forecast(float(mean[0]), float(spread[0]), fold, ratio, model_spec.horizon)

    def _model_key(self, role: Role) -> str:
        c = role.config
        return fingerprint(
            pd.DataFrame(),
            {
                "model": c.model.model_dump(mode="json"),
                "walk_forward": c.walk_forward.model_dump(mode="json"),
                "seed": c.seed,
                "start": str(c.data.start),
                "source": c.data.source,
            },
        )

    def _load_model(self, role: Role, ticker: str, samples: Samples) -> WalkForwardModel:
        if (role.name, ticker) in self._models:
            return self._models[role.name, ticker]
        c = role.config
        network = WalkForwardModel(c.model, c.walk_forward, c.seed)
        pointer = role.folder / ticker / "current.json"
        if pointer.is_file():
            state = json.loads(pointer.read_text())
            if state["key"] != self._model_key(role):
                raise BacktestError(
                    f"the saved model of {role.owner(ticker)} was trained with other settings",
                    "the account's config.toml must not change; create a new account instead",
                )
            through = pd.Timestamp(state["trained_through"])
            if _bars_hash(self.prices()[ticker].loc[:through]) != state["bars"]:
                raise BacktestError(
                    f"{ticker}: the data up to {through.date()} changed since the model was trained "
                    "on it (a revised or re-adjusted history)",
                    "a split or a corrected history: create a new account to retrain on it",
                )
            network.ensemble = load_ensemble(role.folder / ticker / state["dir"], state["members"])
            network.fold = state["fold"]
        self._models[role.name, ticker] = network
        return network

    def _save_model(self, role: Role, ticker: str, network: WalkForwardModel, samples: Samples, split) -> None:
        train = split.train_rows(network.fold)
        through = samples.dates[train[-1] + role.config.model.horizon]
        first = samples.dates[split.first_test() + network.fold * split.retrain_every]
        self._write_model(role, ticker, network, through, first, _bars_hash(self.prices()[ticker].loc[:through]))

    def _write_model(
        self, role: Role, owner: str, network, through: pd.Timestamp, first: pd.Timestamp, bars: str
    ) -> None:
        """The new fold's ensemble in its own folder, then the pointer to it (atomic), then old folders go."""
        root = role.folder / owner
        name = f"fold_{network.fold:04d}"
        save_ensemble(root / name, network.ensemble)
        write_json(
            root / "current.json",
            {
                "key": self._model_key(role),
                "fold": network.fold,
                "dir": name,
                "members": len(network.ensemble),
                "trained_through": through.isoformat(),
                "first_date": first.isoformat(),
                "bars": bars,
            },
        )
        for old in root.glob("fold_*"):
            if old.name != name:
                for item in old.iterdir():
                    item.unlink()
                old.rmdir()


def _bars_hash(frame: pd.DataFrame) -> str:
    return fingerprint(frame[[c for c in ("open", "high", "low", "close", "volume") if c in frame]], {})


def _universe_hash(prices: dict[str, pd.DataFrame], through: pd.Timestamp) -> str:
    """Every ticker's bars up to `through`: a universe model depends on all of them."""
    return fingerprint(pd.concat({t: f.loc[:through] for t, f in prices.items()}, names=["ticker", "date"]), {})

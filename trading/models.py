"""An account's predict role: the networks it serves (per ticker, or one for a universe), trained,
fine-tuned and saved on the walk-forward's own schedule, so a paper step predicts as the backtest did."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtests.errors import BacktestError
from backtests.rundir import write_json
from forecasting.checkpoint import fingerprint, load_ensemble, save_ensemble
from forecasting.walkforward import Samples, WalkForwardModel, make_samples, make_split

if TYPE_CHECKING:
    from trading.account import StepReport


class AccountModels:
    """The model half of `trading.account.Account` (its folder, config and ledger are the account's)."""

    def _predict_universe(
        self, frames: dict[str, pd.DataFrame], day: pd.Timestamp, report: StepReport
    ) -> dict[str, tuple[float, float, int]]:
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
        return {panel.tickers[panel.ticker[r]]: (float(m), float(s), fold) for r, m, s in zip(rows, mean, spread)}

    def _load_universe_model(self, panel):
        from forecasting.cross_section import UNIVERSE, GlobalNetwork

        if UNIVERSE in self._models:
            return self._models[UNIVERSE]
        c = self.config
        network = GlobalNetwork(c.model, c.walk_forward, c.seed)
        pointer = self.folder / "model" / UNIVERSE / "current.json"
        if pointer.is_file():
            state = json.loads(pointer.read_text())
            if state["key"] != self._model_key():
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
            network.ensemble = load_ensemble(self.folder / "model" / UNIVERSE / state["dir"], state["members"])
            network.fold = state["fold"]
        self._models[UNIVERSE] = network
        return network

    def _save_universe_model(self, network, panel, split) -> None:
        from forecasting.cross_section import UNIVERSE

        train = split.train_rows(panel, network.fold)
        through = pd.Timestamp(panel.known_at[train].max())
        first = panel.calendar[split.first_test() + network.fold * split.retrain_every]
        self._write_model(UNIVERSE, network, through, first, _universe_hash(self.prices(), through))

    def _predict(
        self, ticker: str, frame: pd.DataFrame, day: pd.Timestamp, report: StepReport
    ) -> tuple[float, float, int]:
        model_spec, wf = self.config.model, self.config.walk_forward
        samples = make_samples(frame, model_spec, ticker)
        split = make_split(model_spec, wf)
        last = len(samples.dates) - 1
        fold = split.fold_of(last)
        if fold is None:
            first = samples.dates[split.first_test()] if split.first_test() < len(samples.dates) else None
            raise BacktestError(
                f"{ticker}: {day.date()} comes before the walk-forward's first prediction"
                + (f" ({first.date()})" if first is not None else ""),
                "start the account later, or lower walk_forward.min_train / load more history",
            )
        network = self._load_model(ticker, samples)
        while network.fold < fold:
            k = network.fold + 1
            network.train_fold(k, samples, split.train_rows(k))
            self._save_model(ticker, network, samples, split)
            report.trained.append(k)
        mean, spread = network.predict(samples, np.array([last]))
        return float(mean[0]), float(spread[0]), fold

    def _model_key(self) -> str:
        c = self.config
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

    def _load_model(self, ticker: str, samples: Samples) -> WalkForwardModel:
        if ticker in self._models:
            return self._models[ticker]
        network = WalkForwardModel(self.config.model, self.config.walk_forward, self.config.seed)
        pointer = self.folder / "model" / ticker / "current.json"
        if pointer.is_file():
            state = json.loads(pointer.read_text())
            if state["key"] != self._model_key():
                raise BacktestError(
                    f"the saved model of {ticker} was trained with other settings",
                    "the account's config.toml must not change; create a new account instead",
                )
            through = pd.Timestamp(state["trained_through"])
            if _bars_hash(self.prices()[ticker].loc[:through]) != state["bars"]:
                raise BacktestError(
                    f"{ticker}: the data up to {through.date()} changed since the model was trained "
                    "on it (a revised or re-adjusted history)",
                    "a split or a corrected history: create a new account to retrain on it",
                )
            network.ensemble = load_ensemble(self.folder / "model" / ticker / state["dir"], state["members"])
            network.fold = state["fold"]
        self._models[ticker] = network
        return network

    def _save_model(self, ticker: str, network: WalkForwardModel, samples: Samples, split) -> None:
        train = split.train_rows(network.fold)
        through = samples.dates[train[-1] + self.config.model.horizon]
        first = samples.dates[split.first_test() + network.fold * split.retrain_every]
        self._write_model(ticker, network, through, first, _bars_hash(self.prices()[ticker].loc[:through]))

    def _write_model(self, owner: str, network, through: pd.Timestamp, first: pd.Timestamp, bars: str) -> None:
        """The new fold's ensemble in its own folder, then the pointer to it (atomic), then old folders go."""
        root = self.folder / "model" / owner
        name = f"fold_{network.fold:04d}"
        save_ensemble(root / name, network.ensemble)
        write_json(
            root / "current.json",
            {
                "key": self._model_key(),
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

"""A paper account: a directory with the config, the walk-forward model and its ledger, stepped once a day.

`step(D)` after the close of D: settle the orders sent for D's open, mark the book at D's close,
train the network only when the walk-forward schedule starts a new fold (the same
`WalkForwardModel.train_fold` as `walk_forward_predict`), predict D, decide with the backtest's own
rule (`strategies.decision`), and send the orders for the next open. Each phase is one transaction;
sending is idempotent (client order ids), and a step interrupted anywhere finishes on the next call.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from backtests.books import is_universe_strategy
from backtests.config import ExperimentConfig, dump_config, load_config
from backtests.errors import BacktestError
from backtests.experiment import load_experiment_prices
from backtests.rundir import FolderLock, check_output_folder, named_folder, write_json, write_text
from forecasting.calendar import is_session, sessions, trading_calendar
from forecasting.faults import inject
from forecasting.tasks import task_of
from forecasting.walkforward import WalkForwardModel
from strategies.decision import (
    Plan,
    XsParams,
    cash_interest,
    dividend_cash,
    plan_orders,
    rebalance_due,
    slot_weight,
    trailing_vol,
    universe_orders,
    xs_weights,
)
from trading import clock
from trading.brokers import AlpacaBroker, LocalBroker, OrderRejected
from trading.ledger import PaperLedger
from trading.models import VOLATILITY, AccountModels, Forecast, Role
from trading.rules import VOL_FORECAST, paper_strategy, sizing_for, ticker_target

BROKERS = ("local", "alpaca")
DEFAULT_SYMBOLS = {"sp500": "SPY", "nasdaq": "QQQ"}  # tradable proxies of the embedded indices


def account_path(root: str | Path, name: str) -> Path:
    return Path(root) / name


def init_account(
    config_path: str | Path | None,
    overrides: list[str] | None,
    name: str,
    broker: str,
    root: str | Path = "paper",
    volatility: str | Path | None = None,
    volatility_overrides: list[str] | None = None,
) -> Path:
    """Create `root/name/` with the resolved config, the account file and an empty ledger. With
    `volatility` (a volatility config: its model, walk-forward and seed; the data are the account's), the
    account also serves the variance forecast that sizes `lstm_signal`'s trades (`vol_forecast = "vol_lstm"`)."""
    named_folder(root, name, "account name", "--name spy-daily")
    if broker not in BROKERS:
        raise BacktestError(f"unknown broker '{broker}'", "use --broker local or --broker alpaca")
    check_output_folder(root, "--paper-dir")
    config = load_config(config_path, overrides)
    vol_config = None
    if volatility is not None:
        data_keys = [o for o in volatility_overrides or [] if o.strip().startswith("data.")]
        if data_keys:
            raise BacktestError(
                f"--volatility-set {data_keys[0]}: the volatility network trains on the account's own data",
                "set data.* with --set (it applies to both networks)",
            )
        if not Path(volatility).is_file():
            raise BacktestError(
                f"--volatility {volatility}: no such config file",
                "give a volatility config, e.g. --volatility configs/volatility.toml",
            )
        vol_config = load_config(volatility, volatility_overrides).model_copy(update={"data": config.data})
        if task_of(vol_config.model).forecasts != "variance":
            raise BacktestError(
                f"--volatility {volatility} forecasts returns, not variance",
                'give a volatility config (model.target = "realized_vol"), e.g. configs/volatility.toml',
            )
    elif volatility_overrides:
        raise BacktestError("--volatility-set without --volatility", "name the volatility config: --volatility FILE")
    spec = paper_strategy(config, vol_config)
    trading_calendar(config.paper.calendar)  # an unknown calendar fails here, not at the first step
    folder = account_path(root, name)
    if folder.exists():
        raise BacktestError(
            f"paper account '{name}' already exists in {folder}",
            "pick another --name, or step the existing one: lstm-trader paper step " + name,
        )
    if config.data.source.startswith(("builtin:", "csv:")):  # data at hand: too few bars fail here too
        load_experiment_prices(config, beside=(VOL_FORECAST,) if vol_config is not None else ())
        if vol_config is not None:
            load_experiment_prices(vol_config.model_copy(update={"strategies": []}))
    if broker == "alpaca":
        if spec.params.get("allow_short"):
            raise BacktestError(
                "alpaca accounts trade long or flat: Alpaca refuses one order that flips a position from long to short",
                "set allow_short = false for this account",
            )
        AlpacaBroker(symbols(config)).check()  # keys and extra present, account reachable and active
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        raise BacktestError(f"paper account '{name}' already exists in {folder}", "pick another --name") from None
    write_text(folder / "config.toml", dump_config(config))
    if vol_config is not None:
        write_text(folder / "volatility.toml", dump_config(vol_config))
    # the nonce keeps a re-created account of the same name from matching the old one's orders at the broker
    write_json(
        folder / "account.json",
        {
            "name": name,
            "broker": broker,
            "strategy": spec.title,
            "nonce": secrets.token_hex(3),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    ledger = PaperLedger(folder / "ledger.sqlite")
    if broker == "local":
        LocalBroker.create(ledger.db, config.broker)
    ledger.close()
    return folder


def symbols(config: ExperimentConfig) -> dict[str, str]:
    """Data ticker -> broker symbol: the embedded indexes trade as their ETFs; other tickers as themselves."""
    source = config.data.source
    default = {}
    if source.lower().startswith("builtin:"):
        name = source.split(":", 1)[1].lower()
        if name in DEFAULT_SYMBOLS:
            default = {name: DEFAULT_SYMBOLS[name]}
    return {**default, **config.paper.symbols}


@dataclass
class StepReport:
    date: str
    status: str  # done | already | holiday
    equity: float | None = None
    orders: list[dict] = field(default_factory=list)
    fills: int = 0
    trained: list[int] = field(default_factory=list)
    reconciled: int = 0
    rejected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Account(AccountModels):
    """One paper account. Use as a context manager: it holds the account's lock."""

    def __init__(self, root: str | Path, name: str) -> None:
        self.folder = account_path(root, name)
        if not (self.folder / "account.json").is_file():
            known = (
                sorted(p.name for p in Path(root).glob("*") if (p / "account.json").is_file())
                if Path(root).is_dir()
                else []
            )
            raise BacktestError(
                f"unknown paper account '{name}' (no {self.folder / 'account.json'})",
                "create it with lstm-trader paper init CONFIG --name "
                + name
                + (f"; existing: {', '.join(known)}" if known else ""),
            )
        self.name = name
        self.info = json.loads((self.folder / "account.json").read_text())
        self.config = load_config(self.folder / "config.toml")
        vol_path = self.folder / "volatility.toml"
        vol_config = load_config(vol_path) if vol_path.is_file() else None
        self.spec = paper_strategy(self.config, vol_config)
        # the networks it serves: the traded forecast's, and the variance forecast's that sizes it
        self.roles = [Role("forecast", self.config, self.folder / "model")]
        if vol_config is not None:
            self.roles.append(Role(VOLATILITY, vol_config, self.folder / "model-volatility"))
        self.lock = FolderLock(self.folder, "paper account", "another `paper` command is working on it")
        self._prices: dict[str, pd.DataFrame] | None = None
        self._models: dict[tuple[str, str], WalkForwardModel] = {}

    def __enter__(self) -> Account:
        self.lock.__enter__()
        try:
            self.ledger = PaperLedger(self.folder / "ledger.sqlite")
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        try:
            self.broker = (
                LocalBroker(self.ledger.db, self.config.broker)
                if self.info["broker"] == "local"
                else AlpacaBroker(symbols(self.config))
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.ledger.close()
        self.lock.__exit__(*exc)

    @contextmanager
    def reading(self) -> Iterator[Account]:
        """The account opened to read its ledger (status, latest, a forecast) without taking its lock, so
        it answers while a step runs. Every read sees one snapshot (a read transaction in WAL mode, which
        never holds up the step's writes): the ledger as of its last commit when reading began. A step
        commits in stages (decided, each order sent, done), so mid-step that is a decided day whose orders
        are still `new`, as `paper status` would show after a crash there."""
        self.ledger = PaperLedger(self.folder / "ledger.sqlite", reader=True)
        try:
            self.ledger.db.execute("BEGIN")
            yield self
        finally:
            if self.ledger.db.in_transaction:
                self.ledger.db.rollback()
            self.ledger.close()

    # --- data and calendar ----------------------------------------------------------------------
    def prices(self) -> dict[str, pd.DataFrame]:
        if self._prices is None:
            self._prices = load_experiment_prices(self.config, beside=(VOL_FORECAST,) if len(self.roles) > 1 else ())
        return self._prices

    def use_prices(self, prices: dict[str, pd.DataFrame]) -> None:
        self._prices = prices

    def sessions(self, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
        return sessions(first, last, self.config.paper.calendar)

    def is_session(self, day: pd.Timestamp) -> bool:
        return is_session(day, self.config.paper.calendar)

    # --- the daily step -------------------------------------------------------------------------
    def step(self, day: date | None = None, on_day=None) -> list[StepReport]:
        """Step `day` (default: the data's last bar), first catching up any session missed since the last step."""
        prices = self.prices()
        first_bar = max(frame.index[0] for frame in prices.values())
        last_bar = min(frame.index[-1] for frame in prices.values())
        target = pd.Timestamp(day) if day is not None else last_bar
        if target > last_bar:
            raise BacktestError(
                f"the data ends on {last_bar.date()}, before {target.date()}",
                "step after the data source has that day's bar (yahoo: lstm-trader data fetch)",
            )
        if target < first_bar:
            raise BacktestError(
                f"the data starts on {first_bar.date()}, after {target.date()}",
                f"step a date from {first_bar.date()} on",
            )
        if not self.is_session(target):
            report = StepReport(
                target.date().isoformat(),
                "holiday",
                notes=[f"{target.date()} is not a trading day on {self.config.paper.calendar}: nothing to do"],
            )
            if on_day is not None:
                on_day(report)
            return [report]
        done = self.ledger.last_step()
        days = [target]
        notes = []
        if done is not None and pd.Timestamp(done) < target:
            days = [d for d in self.sessions(pd.Timestamp(done), target) if d > pd.Timestamp(done)]
            if isinstance(self.broker, AlpacaBroker) and len(days) > 1:
                # the broker only knows today's cash and positions: past sessions can't be marked honestly
                notes.append(
                    f"skipped {len(days) - 1} missed session(s) from {days[0].date()}: a broker account "
                    "is stepped on the latest session only"
                )
                days = days[-1:]
        elif done is not None and not self.ledger.done(target.date().isoformat()):
            raise BacktestError(
                f"{target.date()} is before the account's last step ({done})",
                "a paper account only moves forward; step a later date",
            )
        self._check_session_closed(target)
        self.broker.check()
        self._check_market_closed()
        reports = []
        for d in days:
            reports.append(self.step_day(d))
            if day is None and reports[-1].status == "already":  # the data was not refreshed since
                reports[-1].notes = [
                    f"the data's last bar is {target.date()}, which was already stepped: nothing to "
                    "do (refresh the data first, e.g. lstm-trader data fetch TICKER --refresh)"
                ]
            reports[-1].notes[:0] = notes
            notes = []
            if on_day is not None:
                on_day(reports[-1])
        return reports

    def _check_session_closed(self, day: pd.Timestamp) -> None:
        """A bar for today's session before its close is a partial bar: deciding on it would be a look-ahead."""
        close = trading_calendar(self.config.paper.calendar).session_close(day)
        if clock.now() < close:
            raise BacktestError(
                f"the session of {day.date()} closes at {close.tz_convert('America/New_York'):%H:%M} "
                "New York time: its bar is not final yet",
                "run `lstm-trader paper step` after the close (e.g. from cron at 16:30 New York time)",
            )

    def _check_market_closed(self) -> None:
        if not isinstance(self.broker, AlpacaBroker):
            return
        clock = self.broker.clock()
        if clock.get("is_open"):
            today = str(clock.get("timestamp", ""))[:10]
            raise BacktestError(
                f"the market is open ({today}): a market order now would fill during the session, not at the next open",
                "run `lstm-trader paper step` after the close (e.g. from cron at 16:30 New York time)",
            )

    def step_day(self, day: pd.Timestamp) -> StepReport:
        key = day.date().isoformat()
        if self.ledger.done(key):
            return StepReport(key, "already", notes=[f"{key} was already stepped: nothing sent"])
        report = StepReport(key, "done")
        frames = {t: f.loc[:day] for t, f in self.prices().items()}
        for ticker, frame in frames.items():
            if frame.index[-1] != day:
                raise BacktestError(
                    f"{ticker}: the data has no bar for {key} (last: {frame.index[-1].date()})",
                    "step after the data source has that day's bar",
                )
        if not self.ledger.decided(key):
            self._settle_and_decide(day, frames, report)
        else:
            report.notes.append(f"{key}: decision already recorded; finishing the step")
        self._send(key, report)
        inject(f"paper.before-done:{key}")
        with self.ledger.transaction():
            self.ledger.add("steps", {"date": key, "finished_at": clock.now().isoformat(timespec="seconds")})
        if report.rejected:
            raise BacktestError(
                f"{key}: the broker rejected {', '.join(report.rejected)}",
                "the step is done and the rejection is in the ledger; the next close decides again",
            )
        row = self.ledger.db.execute("SELECT equity FROM equity WHERE date = ?", (key,)).fetchone()
        report.equity = row[0] if row else None
        report.orders = [dict(r) for r in self.ledger.orders(key)]
        return report

    def _settle_and_decide(self, day: pd.Timestamp, frames: dict[str, pd.DataFrame], report: StepReport) -> None:
        key = day.date().isoformat()
        universe = is_universe_strategy(self.spec)
        main = self.roles[0]
        if universe:
            predictions = self._predict_universe(frames, day, report)
        else:
            predictions = {t: self._predict(main, t, frame, day, report) for t, frame in frames.items()}
        # the variance forecast that sizes the trade: the traded one's (vol_target), or the volatility role's
        variances = {t: p for t, p in predictions.items() if p.ratio is not None}
        for role in self.roles[1:]:
            variances = {t: self._predict(role, t, frame, day, report) for t, frame in frames.items()}
        for ticker, forecast in variances.items():  # never a silent fall-back, as the backtest refuses it too
            if not math.isfinite(forecast.variance()):
                raise BacktestError(
                    f"{ticker}: the variance forecast of {key} is NaN, so the trade cannot be sized",
                    "the network's training diverged: create a new account (a different seed or learning rate)",
                )
        # a close-only history has no open: its orders fill at the next close, as in the backtest
        opens = {t: float(f["open" if "open" in f else "close"].iloc[-1]) for t, f in frames.items()}
        closes = {t: float(f["close"].iloc[-1]) for t, f in frames.items()}
        sent = self.ledger.orders(status="sent")
        sizes = sizing_for(self.spec, self.config.broker)
        inject(f"paper.before-decide:{key}")
        with self.ledger.transaction():
            # the holders of record of today's dividends: the book at the last close, before today's fills
            local = isinstance(self.broker, LocalBroker)
            held_before = {t: q for t, (q, _) in self.broker.book().positions.items()} if local else {}
            if isinstance(self.broker, LocalBroker):
                fills, refused = self.broker.settle(key, opens)
            else:
                fills, refused = self.broker.settle(key, opens, [dict(r) for r in sent])
            for fill in fills:
                self.ledger.add("fills", fill.__dict__)
                self.ledger.set_order_status(fill.client_order_id, "filled")
            for order_id, reason in refused:
                self.ledger.set_order_status(order_id, "rejected", reason=reason)
            report.fills = len(fills)
            intended = {k: v for k, v in self.ledger.get_state("intended", {}).items()}
            stopped = self.ledger.get_state("stopped", {})
            for order_id, _ in refused:  # decide again at this close, as the backtest does
                ticker = self.ledger.db.execute(
                    "SELECT ticker FROM orders WHERE client_order_id = ?", (order_id,)
                ).fetchone()
                if ticker:
                    intended.pop(ticker[0], None)
            book = self.broker.book()
            unsettled = {r["ticker"] for r in self.ledger.orders(status="sent")}  # still working at the broker
            targets = {}
            positions = {t: q for t, (q, _) in book.positions.items() if t in frames}  # others are not this account's
            if universe:  # the backtest's own steps: the rule's weights, then universe_orders
                session = int(self.ledger.db.execute("SELECT COUNT(*) FROM equity").fetchone()[0])
                decided = self._universe_weights(predictions, frames, intended, session)
                plan, acting, last = universe_orders(
                    decided,
                    self.ledger.get_state("last_decided", {}),
                    positions,
                    closes,
                    book.cash,
                    intended,
                    sizes,
                    slot_weight(XsParams.of(self.spec.params), sizes.max_exposure),
                    busy=unsettled,
                )
                self.ledger.set_state("last_decided", last)
                weights = decided if decided is not None else acting
            for ticker, forecast in predictions.items():
                sized_by = variances.get(ticker)
                if universe:  # the ticker's weight at a decision (or a retried buy); NaN on other sessions
                    target = weights.get(ticker, float("nan"))
                elif ticker in unsettled:
                    target = float("nan")
                else:
                    target, stopped[ticker] = ticker_target(
                        self.spec,
                        forecast,
                        sized_by,
                        frames[ticker],
                        book.positions.get(ticker, (0.0, 0.0)),
                        stopped.get(ticker),
                    )
                    targets[ticker] = target
                self.ledger.add(
                    "signals",
                    {
                        "date": key,
                        "ticker": ticker,
                        "y_pred": forecast.y_pred,
                        "y_pred_std": forecast.spread,
                        "fold": forecast.fold,
                        "close": closes[ticker],
                        "target": target,
                        "vol_pred": sized_by.y_pred if sized_by else None,
                        "vol_ratio": sized_by.ratio if sized_by else None,
                        "vol_horizon": sized_by.horizon if sized_by else None,
                    },
                )
            if not universe:
                plan: Plan = plan_orders(targets, positions, closes, book.cash, intended, sizes, len(frames))
            if isinstance(self.broker, LocalBroker):  # booked after the next open's fills, as Backtrader does
                self.broker.credit(cash_interest(book.cash, self.config.broker.cash_rate))
                dividends = {t: float(f["dividends"].iloc[-1]) for t, f in frames.items() if "dividends" in f}
                self.broker.credit(dividend_cash(held_before, dividends))  # (a broker account gets its own)
            cash = book.cash
            equity = cash + sum(q * closes[t] for t, q in positions.items())
            self.ledger.add(
                "equity",
                {
                    "date": key,
                    "cash": cash,
                    "equity": equity,
                    "positions": json.dumps({t: q for t, q in positions.items() if q}),
                },
            )
            names = symbols(self.config)
            for ticker, qty in plan.orders:
                self.ledger.add(
                    "orders",
                    {
                        "client_order_id": client_order_id(self.name, self.info.get("nonce", "0"), ticker, key, qty),
                        "date": key,
                        "ticker": ticker,
                        "symbol": names.get(ticker, ticker),
                        "qty": qty,
                        "status": "new",
                    },
                )
            for owner, pointer in self.model_pointers():  # the versions serving today
                state = json.loads(pointer.read_text())
                self.ledger.add(
                    "models",
                    {
                        "ticker": owner,
                        "fold": state["fold"],
                        "trained_through": state["trained_through"][:10],
                        "first_date": state["first_date"][:10],
                        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    },
                )
            self.ledger.set_state("intended", plan.intended)
            self.ledger.set_state("stopped", {t: s for t, s in stopped.items() if s is not None})

    def model_pointers(self) -> list[tuple[str, Path]]:
        """(owner, current.json) of every network the account serves, each role's in its own folder."""
        return [pair for role in self.roles for pair in role.pointers()]

    def _send(self, key: str, report: StepReport) -> None:
        rejected = []
        for row in self.ledger.orders(key, status="new"):
            found = self.broker.find(row["client_order_id"])
            if found is not None:  # sent before a crash: the broker has it, so it is not sent again
                report.reconciled += 1
                broker_id = found["id"]
            else:
                try:
                    broker_id = self.broker.submit(
                        row["client_order_id"], row["ticker"], row["symbol"], row["qty"], row["date"]
                    )
                except OrderRejected as exc:  # recorded; the other orders still go, the next close decides again
                    with self.ledger.transaction():
                        self.ledger.set_order_status(row["client_order_id"], "rejected", reason=exc.reason)
                    rejected.append(f"{row['client_order_id']} ({exc.reason})")
                    continue
                inject(f"paper.after-send:{key}")
            with self.ledger.transaction():
                self.ledger.set_order_status(row["client_order_id"], "sent", broker_id=str(broker_id))
        report.rejected = rejected

    def _universe_weights(
        self,
        predictions: dict[str, Forecast],
        frames: dict[str, pd.DataFrame],
        intended: dict,
        session: int,
    ) -> dict[str, float] | None:
        """xs_rank's weights at this close, as the backtest's `XsRank.weights` decides them (None: not a
        rebalance session). `session` counts the account's steps before this one (0 at its first)."""
        rule = XsParams.of(self.spec.params)
        if not rebalance_due(session, rule.rebalance_every):
            return None
        vols = None
        if rule.weighting == "inverse_vol":
            vols = {t: trailing_vol(frames[t]["close"].to_numpy()[-(rule.vol_window + 1) :]) for t in predictions}
        scores = {t: p.y_pred for t, p in predictions.items()}
        sizing = sizing_for(self.spec, self.config.broker)
        chosen = xs_weights(scores, rule, sizing.max_exposure, held=intended, vols=vols)
        return {t: chosen.get(t, float("nan")) for t in scores}

    # --- the model ------------------------------------------------------------------------------


def client_order_id(account: str, nonce: str, ticker: str, day: str, qty: float) -> str:
    """Account (name and nonce), ticker, date and leg: the same decision always gets the same id."""
    return f"lt-{account}-{nonce}-{ticker}-{day.replace('-', '')}-{'buy' if qty > 0 else 'sell'}"


def replay(account: Account, start: date, end: date, on_day=None) -> list[StepReport]:
    """Step every session from `start` to `end` over historical data, with the local broker. The reports
    cover the whole span: sessions stepped before come first, with status 'already'."""
    if account.info["broker"] != "local":
        raise BacktestError(
            "replay runs on the local broker only",
            "create a local account for it: lstm-trader paper init CONFIG --name NAME --broker local",
        )
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if last < first:
        raise BacktestError(f"--to {end} is before --from {start}", "give --from D1 --to D2 with D1 <= D2")
    prices = account.prices()
    last_bar = min(frame.index[-1] for frame in prices.values())
    if last > last_bar:
        raise BacktestError(f"the data ends on {last_bar.date()}, before --to {end}", "replay a span inside the data")
    done = account.ledger.last_step()
    span = account.sessions(first, last)
    days = [d for d in span if done is None or d > pd.Timestamp(done)]
    stepped = [
        StepReport(d.date().isoformat(), "already", notes=[f"{d.date()} was already stepped: nothing sent"])
        for d in span
        if done is not None and d <= pd.Timestamp(done) and account.ledger.done(d.date().isoformat())
    ]
    if done is not None and days:
        following = [d for d in account.sessions(pd.Timestamp(done), last) if d > pd.Timestamp(done)]
        if following and following[0] < days[0]:
            raise BacktestError(
                f"the account's last step is {done}; --from {start} would skip sessions",
                f"replay --from {following[0].date()} (or a new account)",
            )
    reports = stepped  # sessions of the span stepped before: reported as such, not stepped again
    if on_day is not None:
        on_day(None, len(days))  # the total, before the first step (which trains the folds up to it)
    for day in days:
        reports.append(account.step_day(day))
        if on_day is not None:
            on_day(reports[-1], len(days))
    return reports

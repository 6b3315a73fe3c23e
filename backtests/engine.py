"""Run one strategy over a predictions table in Backtrader, with the broker's costs, and tidy the results."""

from __future__ import annotations

from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd
from pydantic import Field, StrictBool

from backtests.errors import BacktestError
from forecasting.spec import Strict
from strategies import BookRecorder, PredictionData, close_only, forecast_model, prediction_frame, resolve
from strategies.decision import broker_params

WARMUP_BARS = 300  # history fed before the first prediction so every indicator is ready on day one


class BrokerSpec(Strict):
    cash: float = Field(100_000.0, gt=0, description="starting cash")
    commission_pct: float = Field(0.0005, ge=0, lt=0.1, description="fraction of traded value (0.0005 = 5 bp)")
    commission_per_share: float = Field(
        0.0, ge=0, description="commission per share traded, in the account's currency (on top of commission_pct)"
    )
    commission_min: float = Field(0.0, ge=0, description="minimum commission per fill")
    slippage_pct: float = Field(0.0005, ge=0, lt=0.1, description="fills this fraction worse than the open")
    fractional: StrictBool = Field(False, description="allow fractional shares")
    cash_buffer: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="fraction of equity kept in cash: orders are sized "
        "from the close and fill at the next open, so a gap up "
        "must not leave a fully invested buy short of cash",
    )
    short_borrow_rate: float = Field(0.0, ge=0, lt=1, description="annual cost of short positions")
    cash_rate: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="annual interest on idle cash, credited daily "
        "(rate / 252 per bar); also the Sharpe ratios' risk-free rate",
    )
    close_at_end: StrictBool = Field(
        True,
        description="liquidate every position at the last open, with costs, so that "
        "total returns are after all costs and every trade is closed",
    )


class Commission(bt.CommInfoBase):
    """Percent of value plus per share, with a minimum per fill (sizes come from the strategy)."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("percabs", True),
        ("pct", 0.0),
        ("per_share", 0.0),
        ("minimum", 0.0),
    )

    def _getcommission(self, size, price, pseudoexec):
        return fill_commission(size, price, self.p.pct, self.p.per_share, self.p.minimum)


def fill_commission(size: float, price: float, pct: float, per_share: float, minimum: float) -> float:
    """The commission of one fill (or one leg of it): percent of value plus per share, at least `minimum`.

    Backtrader's broker (`Commission`) and the paper account's local broker both charge this."""
    if not size:
        return 0.0
    return max(minimum, abs(size) * price * pct + abs(size) * per_share)


@dataclass
class BacktestResult:
    strategy: str
    equity: pd.Series  # broker value at each close from the first prediction date
    returns: pd.Series  # daily returns of `equity` (first day excluded)
    positions: pd.DataFrame  # shares held per ticker at each close
    fills: pd.DataFrame  # every execution: date, ticker, size, price, value, commission, slippage
    trades: pd.DataFrame  # round trips: entry/exit dates and prices, size, P&L, costs
    tickers: list[str] = field(default_factory=list)
    rejected_orders: int = 0
    # date, ticker, target: per-ticker strategies their target in [-1, 1] at every close; universe ones the
    # weight (signed fraction of equity) of every name on decision days (NaN: no score, no decision)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    risk_free: float = 0.0  # annual rate the Sharpe ratios subtract (the broker's cash rate)
    fill_rule: str = "next open"  # when a decision at close t fills: "next close (close-only data)" without opens


def run_backtest(
    prices: dict[str, pd.DataFrame] | pd.DataFrame,
    predictions: pd.DataFrame,
    strategy: str,
    broker: BrokerSpec | None = None,
    params: dict | None = None,
    label: str | None = None,
    warmup: int = WARMUP_BARS,
) -> BacktestResult:
    """Backtest `strategy` (a registry name) on every ticker of `prices` as one portfolio.

    Decisions are made and sized at each close (`strategies.decision`, the rule paper trading uses)
    and filled at the next open, so the prediction made at close t trades at open t+1 (plus
    slippage); close-only prices (no `open` column) fill at the next close instead. Equity is
    recorded from the first trading date on: the latest first prediction date across tickers for
    per-ticker strategies, the earliest for universe ones (`cls.universe`, e.g. xs_rank).
    """
    broker = broker or BrokerSpec()
    if isinstance(prices, pd.DataFrame):
        prices = {"asset": prices}
    cls, params = resolve(strategy, params)
    cls.check_universe_size(params, len(prices))  # e.g. xs_rank's k against the tickers, before any work
    traded = forecast_model(cls, params)
    model = traded or "lstm"
    available = set(predictions["model"].unique()) if "model" in predictions else set()
    if model not in available:
        if traded is not None:
            raise BacktestError(
                f"strategy '{strategy}' trades the '{model}' forecast, which the predictions lack",
                "use a predictions table written by walk_forward_predict",
            )
        model = sorted(available)[0] if available else None
    # the variance forecast a strategy is sized by: lstm_signal's vol_forecast, or vol_target's own model
    vol_model = params.get("vol_forecast") or (traded if getattr(cls, "reads_variance", False) else None)
    if vol_model and vol_model not in available:
        raise BacktestError(
            f"strategy '{strategy}' sizes by the '{vol_model}' volatility forecast, which the predictions lack",
            "backtest with a volatility run's predictions beside: lstm-trader backtest PREDICTIONS --volatility "
            "VOL_RUN/predictions.parquet",
        )
    if vol_model and "return_var_ratio" not in predictions:
        raise BacktestError(
            f"strategy '{strategy}' sizes by the '{vol_model}' forecast, which is no variance forecast",
            'trade a volatility run\'s predictions (model.target = "realized_vol"), or join them with --volatility',
        )
    cerebro = bt.Cerebro(stdstats=False)
    starts, penultimate, marks = [], [], {}
    for ticker, frame in prices.items():
        mine = predictions[predictions["ticker"] == ticker] if "ticker" in predictions else predictions
        rows = mine[mine["model"] == model] if model else mine
        if vol_model:  # the day's return-variance forecast of a volatility model, beside the return forecast
            variance = daily_return_variance(mine[mine["model"] == vol_model])
            uncovered = pd.DatetimeIndex(rows["date"]).difference(variance.dropna().index)
            blank = uncovered.intersection(variance.index)  # rows there, with no number in them
            if len(blank):  # never a silent fall-back to another sizing
                raise BacktestError(
                    f"{ticker}: the '{vol_model}' forecast is NaN on {blank[0].date()} "
                    f"({_days(len(blank))} of the forecasts traded)",
                    "the volatility predictions have missing values there: rerun the volatility run",
                )
            if len(uncovered):
                covered = variance.dropna().index
                span = f"cover {covered.min().date()} to {covered.max().date()}" if len(covered) else "are missing"
                raise BacktestError(
                    f"{ticker}: the '{vol_model}' forecasts {span}, not {uncovered[0].date()} "
                    f"({_days(len(uncovered))} of the forecasts traded)",
                    "backtest a volatility run over the same dates",
                )
            rows = rows.assign(vol_var=rows["date"].map(variance))
        feed, first, _ = prediction_frame(frame, rows, warmup=warmup, name=ticker)
        cerebro.adddata(PredictionData(dataname=feed), name=ticker)
        starts.append(first)
        penultimate.append(feed.index[-2] if len(feed) > 1 else feed.index[-1])
        marks[ticker] = float(feed["close"].iloc[-1])
    # a universe strategy trades from its first ticker's first prediction, each name from its own
    trade_start = (min(starts) if cls.universe else max(starts)).date()
    ticker_starts = {ticker: first.date() for ticker, first in zip(prices, starts)}
    cerebro.broker.setcash(broker.cash)
    # No submit-time check: at the next open, execution refuses what cash can't buy (as a live
    # broker would); the check at submission would also miss that sells fill before buys.
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.addcommissioninfo(
        Commission(
            pct=broker.commission_pct,
            per_share=broker.commission_per_share,
            minimum=broker.commission_min,
            interest=broker.short_borrow_rate,
            interest_long=False,
        )
    )
    if broker.slippage_pct:
        cerebro.broker.set_slippage_perc(
            broker.slippage_pct, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
        )  # a cost, not bounded by the bar's printed range
    # close_at_end: decide "flat" at the close of the feed's second-to-last bar, filled at the last open
    liquidate_on = min(penultimate).date() if broker.close_at_end else None
    cerebro.addstrategy(
        cls,
        trade_start=trade_start,
        liquidate_on=liquidate_on,
        cash_rate=broker.cash_rate,
        ticker_starts=ticker_starts,
        **{name: getattr(broker, name) for name in broker_params()},  # the sizing the broker config sets
        **params,
    )
    cerebro.addanalyzer(BookRecorder, _name="book", start=trade_start)
    strat = cerebro.run()[0]
    book = pd.DataFrame(strat.analyzers.book.get_analysis())
    book["date"] = pd.to_datetime(book["date"])
    book = book.set_index("date")
    tickers = list(prices)
    equity = book["equity"].rename(label or strategy)
    fills = _fills_table(strat.fills)
    return BacktestResult(
        strategy=label or strategy,
        equity=equity,
        returns=equity.pct_change().iloc[1:],
        positions=book[tickers],
        fills=fills,
        trades=round_trips(fills, marks),
        tickers=tickers,
        rejected_orders=strat.rejected,
        risk_free=broker.cash_rate,
        decisions=pd.DataFrame(strat.decisions, columns=["date", "ticker", "target"]),
        fill_rule=fill_rule(prices),
    )


def fill_rule(prices: dict[str, pd.DataFrame]) -> str:
    """When an order decided at close t fills: the next open, or the next close for close-only prices."""
    closes = [ticker for ticker, frame in prices.items() if close_only(frame)]
    if not closes:
        return "next open"
    if len(closes) == len(prices):
        return "next close (close-only data)"
    return "next open; next close for the close-only " + ", ".join(closes)


def daily_return_variance(rows: pd.DataFrame) -> pd.Series:
    """A volatility model's rows as a forecast of the next session's return variance, by date: the
    h-session variance (exp of y_pred) in close-to-close units (return_var_ratio), per session."""
    from forecasting.targets import return_variance

    ratio = rows["return_var_ratio"].to_numpy() if "return_var_ratio" in rows else 1.0
    horizon = rows["horizon"].to_numpy() if "horizon" in rows else 1
    values = return_variance(rows["y_pred"].to_numpy(dtype="float64"), ratio, horizon)
    return pd.Series(values, index=pd.DatetimeIndex(rows["date"]))


def _fills_table(fills: list[dict]) -> pd.DataFrame:
    cols = ["date", "ticker", "size", "price", "value", "commission", "slippage"]
    if not fills:
        return pd.DataFrame(columns=cols)
    table = pd.DataFrame(fills)
    table["date"] = pd.to_datetime(table["date"])
    gap = (table["price"] - table["open"]).abs()
    gap = gap.where(gap > 1e-12 * table["open"], 0.0)  # Backtrader's price averaging leaves ~1e-14 noise
    table["slippage"] = gap * table["size"].abs()
    return table[cols]


def round_trips(fills: pd.DataFrame, marks: dict[str, float] | None = None) -> pd.DataFrame:
    """Pair fills into round trips per ticker (flat -> position -> flat); a reversal closes one and opens one.

    A position still open at the end has no exit date and `open` set; with `marks` (last close per
    ticker) it is marked to market there (exit price = the mark, no exit costs), so that a losing
    open trade counts in the win rate; without, its P&L is NaN.
    """
    cols = [
        "ticker",
        "direction",
        "entry_date",
        "exit_date",
        "size",
        "entry_price",
        "exit_price",
        "pnl",
        "entry_commission",
        "exit_commission",
        "pnl_net",
        "open",
    ]
    trips = []
    for ticker, rows in fills.groupby("ticker", sort=False):
        position, trip = 0.0, None  # signed shares; the round trip being built
        for fill in rows.itertuples():
            remaining, commission_per_share = fill.size, fill.commission / abs(fill.size)
            while abs(remaining) > 1e-12:
                if trip is None:  # open
                    trip = {
                        "ticker": ticker,
                        "direction": 1.0 if remaining > 0 else -1.0,
                        "entry_date": fill.date,
                        "size": 0.0,
                        "entry_value": 0.0,
                        "entry_commission": 0.0,
                        "exit_size": 0.0,
                        "exit_value": 0.0,
                        "exit_commission": 0.0,
                    }
                if np.sign(remaining) == trip["direction"]:  # add to the position
                    trip["size"] += abs(remaining)
                    trip["entry_value"] += abs(remaining) * fill.price
                    trip["entry_commission"] += abs(remaining) * commission_per_share
                    position += remaining
                    remaining = 0.0
                else:  # reduce or close
                    qty = min(abs(remaining), abs(position))
                    trip["exit_size"] += qty
                    trip["exit_value"] += qty * fill.price
                    trip["exit_commission"] += qty * commission_per_share
                    position -= np.sign(position) * qty
                    remaining += trip["direction"] * qty  # remaining has the opposite sign
                    if abs(position) < 1e-12:
                        position = 0.0
                        trip["exit_date"] = fill.date
                        trips.append(trip)
                        trip = None
        if trip is not None:
            trip["exit_date"] = pd.NaT
            trips.append(trip)
    out = []
    for t in trips:
        entry = t["entry_value"] / t["size"]
        still_open = pd.isna(t["exit_date"])
        if still_open and marks and t["ticker"] in marks:  # what is left is valued at the mark
            t["exit_value"] += (t["size"] - t["exit_size"]) * marks[t["ticker"]]
            t["exit_size"] = t["size"]
        closed = t["exit_size"] > 0
        exit_price = t["exit_value"] / t["exit_size"] if closed else np.nan
        pnl = t["direction"] * t["exit_size"] * (exit_price - entry) if closed else np.nan
        out.append(
            {
                "ticker": t["ticker"],
                "direction": "long" if t["direction"] > 0 else "short",
                "entry_date": t["entry_date"],
                "exit_date": t["exit_date"],
                "size": t["size"],
                "entry_price": entry,
                "exit_price": exit_price,
                "pnl": pnl,
                "entry_commission": t["entry_commission"],
                "exit_commission": t["exit_commission"],
                "pnl_net": pnl - t["entry_commission"] - t["exit_commission"] if closed else np.nan,
                "open": bool(still_open),
            }
        )
    return pd.DataFrame(out, columns=cols)


def _days(n: int) -> str:
    return f"{n} day" + ("s" if n != 1 else "")

"""The decision rule, as pure functions: what to hold after the close of day t, and the orders for it.

Both executors call these: the Backtrader strategies (`strategies.base.TargetStrategy`) and the paper
trading job (`trading`). Everything here is known at the close of t: the prediction made at
that close, the strategy's parameters, the current position and cash, and the close itself. Orders
are sized from the close and fill at the next open; `cash_buffer` keeps a small part of equity in
cash so that an overnight gap up rarely leaves a fully invested buy short of cash (the broker then
refuses it, as a live broker would, and the rule decides again at the next close).

Two kinds of rule feed the same sizing (`plan_weights`): per-ticker targets in [-1, 1]
(`signal_target`, sized by `plan_orders` at `max_exposure / n_assets` each) and the cross-sectional
`xs_rank` rule, which weighs a whole universe at once every `rebalance_every` sessions (`xs_weights`,
`rebalance_due`). Without an open (close-only data) the next "open" is the next close.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from strategies.errors import StrategyError


def _param(default, low=None, high=None, integer: bool = False, broker: bool = False, choices: tuple = ()):
    """A trading parameter, declared once: its default, its bounds (None: open on that side), the values
    a text parameter may take (empty: any text) and whether the broker config sets it (then a
    strategy's params may not)."""
    return field(
        default=default,
        metadata={
            "bounds": (low, high, integer) if low is not None or high is not None else None,
            "broker": broker,
            "choices": tuple(choices),
        },
    )


def _vol_window():  # one declaration for both rules that read trailing closes
    return _param(20, 2, None, integer=True)


def _target_vol(default):  # one declaration (bounds) for both rules that target a volatility
    return _param(default, 1e-6, 10)


@dataclass(frozen=True)
class Sizing:
    max_exposure: float = _param(1.0, 1e-6, 1)  # of equity: split equally over the tickers, or over xs_rank's legs
    rebalance_band: float = _param(0.1, 0, 1)  # re-size only when the wanted exposure moves by more than this
    cash_buffer: float = _param(0.01, broker=True)  # fraction of equity kept in cash when fully invested
    fractional: bool = _param(False, broker=True)  # whole shares, or fractional ones in millionths
    slippage_pct: float = _param(0.0, broker=True)  # sizes leave room for the costs of the fill
    commission_pct: float = _param(0.0, broker=True)
    commission_per_share: float = _param(0.0, broker=True)
    commission_min: float = _param(0.0, broker=True)  # per fill: a small buy costs at least this

    @classmethod
    def of(cls, params: Mapping, broker) -> Sizing:
        """The sizing of a strategy's `params` (its own fields) under `broker` (a BrokerSpec: the rest)."""
        own = {f.name: params[f.name] for f in fields(cls) if not f.metadata["broker"] and f.name in params}
        return cls(**own, **{f.name: getattr(broker, f.name) for f in fields(cls) if f.metadata["broker"]})


@dataclass(frozen=True)
class SignalParams:
    enter_long: float = _param(0.0)
    enter_short: float = _param(0.0)
    allow_short: bool = _param(False)
    target_vol: float | None = _target_vol(None)  # annualised volatility target; None = fixed exposure
    vol_window: int = _vol_window()
    # close a position this far under its entry; re-enter on a new signal
    stop_loss: float | None = _param(None, 1e-6, 1)
    # with target_vol: the volatility model whose forecast scales the exposure (e.g. "vol_lstm", rows of a
    # volatility run backtested beside: `backtest --volatility`); None: the closes' trailing volatility
    vol_forecast: str | None = _param(None)

    @classmethod
    def of(cls, params: Mapping) -> SignalParams:
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


@dataclass(frozen=True)
class VolParams:
    """Volatility targeting: hold target_vol / forecast volatility of equity, at most all of it."""

    target_vol: float = _target_vol(0.10)  # annualised
    forecast: str = _param("lstm")  # whose variance forecast sizes the position; "trailing": the closes' own
    vol_window: int = _vol_window()  # trailing closes, for forecast = "trailing"

    @classmethod
    def of(cls, params: Mapping) -> VolParams:
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


TRAILING = "trailing"  # VolParams.forecast's value that reads no forecast: a rule, not a model

WEIGHTINGS = ("equal", "inverse_vol")


@dataclass(frozen=True)
class XsParams:
    """The cross-sectional rule `xs_rank`: rank a universe by forecast, hold the top (and bottom) k."""

    k: int = _param(5, 1, None, integer=True)  # names per leg
    allow_short: bool = _param(False)  # also short the bottom k (then dollar neutral)
    weighting: str = _param("equal", choices=WEIGHTINGS)  # within a leg: equal, or in proportion to 1/volatility
    rebalance_every: int = _param(5, 1, None, integer=True)  # sessions between decisions (from the first one)
    rank_band: int = _param(0, 0, None, integer=True)  # a held name stays while ranked within k + rank_band
    vol_window: int = _vol_window()  # trailing returns for inverse-vol weights
    forecast: str = _param("lstm")  # which model's rows of the predictions table are ranked

    @classmethod
    def of(cls, params: Mapping) -> XsParams:
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


def backtrader_params(cls) -> tuple[tuple[str, object], ...]:
    """A decision dataclass's fields as Backtrader `params` (name, default)."""
    return tuple((f.name, f.default) for f in fields(cls))


DECISION_PARAMS = (Sizing, SignalParams, XsParams, VolParams)


def declared_bounds() -> dict[str, tuple]:
    """(low, high, integer) of every bounded decision parameter, for the strategy registry's checks."""
    return {
        f.name: f.metadata["bounds"] for cls in DECISION_PARAMS for f in fields(cls) if f.metadata["bounds"] is not None
    }


def declared_choices() -> dict[str, tuple[str, ...]]:
    """The values each text decision parameter with a fixed set of values may take."""
    return {f.name: f.metadata["choices"] for cls in DECISION_PARAMS for f in fields(cls) if f.metadata["choices"]}


def broker_params() -> set[str]:
    return {f.name for f in fields(Sizing) if f.metadata["broker"]}


@dataclass
class Plan:
    """The outcome of one close: orders (ticker, signed shares), sells first, and the new intended exposures."""

    orders: list[tuple[str, float]]
    intended: dict[str, float] = field(default_factory=dict)


def signal_target(
    pred: float,
    params: SignalParams,
    *,
    position: float = 0.0,
    entry_price: float = 0.0,
    closes: Sequence[float] = (),
    stopped: float | None = None,
    forecast_variance: float | None = None,
) -> tuple[float, float | None]:
    """The forecast rule: target exposure in [-1, 1] from the prediction made at close t.

    `closes` are the last `vol_window + 1` closes up to t (for the stop and volatility scaling);
    `stopped` is the side a stop-loss closed, which is not re-entered until the signal changes.
    With `target_vol`, the exposure is scaled by `forecast_variance` (a forecast of the next session's
    return variance: the rule then takes both forecasts, return and volatility) when given, else by
    the closes' trailing volatility. Returns the target (NaN when there is no prediction) and the new
    `stopped` state.
    """
    if pred is None or math.isnan(pred):
        return float("nan"), stopped
    side = 1.0 if pred > params.enter_long else -1.0 if params.allow_short and pred < params.enter_short else 0.0
    if stopped == side:
        return 0.0, stopped
    if side and params.stop_loss and position and entry_price > 0:
        move = closes[-1] / entry_price - 1.0
        if (move if position > 0 else -move) < -params.stop_loss:
            return 0.0, side
    if params.target_vol and forecast_variance is not None:  # sized by the forecast: none, no decision
        return side * vol_target_exposure(annual_vol(forecast_variance), params.target_vol), None
    return side * volatility_scale(closes, params), None


def annual_vol(daily_variance: float) -> float:
    """A daily variance as an annualised volatility: sqrt(252 x variance); NaN for a missing or non-positive one."""
    return math.sqrt(252.0 * daily_variance) if math.isfinite(daily_variance) and daily_variance > 0 else float("nan")


def vol_target(params: VolParams, forecast_variance: float | None, closes: Sequence[float] = ()) -> float:
    """The volatility-targeting rule's exposure at close t: target_vol over the annualised forecast of the
    next session's return variance (`forecast_variance`), or over the last `vol_window` returns of
    `closes` with `forecast = "trailing"`; NaN without a usable forecast."""
    if params.forecast == TRAILING:
        vol = trailing_vol(closes)
    else:
        vol = annual_vol(forecast_variance if forecast_variance is not None else float("nan"))
    return vol_target_exposure(vol, params.target_vol)


def vol_target_exposure(vol: float, target_vol: float) -> float:
    """Volatility targeting: target_vol / vol, capped at 1 (the strategy's max_exposure scales it);
    NaN without a usable forecast (no decision: the position is kept)."""
    if vol is None or not math.isfinite(vol) or vol <= 0:
        return float("nan")
    return min(1.0, target_vol / vol)


def volatility_scale(closes: Sequence[float], params: SignalParams) -> float:
    if not params.target_vol or len(closes) <= 2:
        return 1.0
    realised = trailing_vol(closes)
    return min(1.0, params.target_vol / realised) if realised > 0 else 1.0


def trailing_vol(closes: Sequence[float]) -> float:
    """Annualised volatility of the closes' log returns (sample std x sqrt(252)); NaN under three closes."""
    if len(closes) <= 2:
        return float("nan")
    logs = [math.log(b / a) for a, b in zip(closes[:-1], closes[1:])]
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)) * math.sqrt(252)


def rebalance_due(session: int, every: int) -> bool:
    """Whether session `session` (0 at the first trading session, +1 per session) is a decision day of a
    rule that decides every `every` sessions: sessions 0, every, 2 * every, ..."""
    return session % every == 0


def leg_exposure(params: XsParams, max_exposure: float) -> float:
    """Each leg's part of equity: all of `max_exposure` long-only; half long and half short with shorts."""
    return max_exposure / 2 if params.allow_short else max_exposure


def slot_weight(params: XsParams, max_exposure: float) -> float:
    """One name's equal weight in a full leg (leg exposure / k): the unit of `xs_rank`'s rebalance band."""
    return leg_exposure(params, max_exposure) / params.k


def xs_weights(
    scores: Mapping[str, float],
    params: XsParams,
    max_exposure: float,
    held: Mapping[str, float] | None = None,
    vols: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The cross-sectional rule: rank the names by score, hold the top k long (and the bottom k short).

    Names with a finite score are ranked best first; equal scores rank by ticker name. The long leg is
    the top k, except that a name held long (`held[t] > 0`, the weights last intended) keeps its place
    while it ranks within k + rank_band, and the places left go to the best-ranked others. With
    `allow_short` the short leg is the bottom k by the same rule counted from the bottom (names held
    short keep their place), never a name of the long leg.

    Each leg is worth `leg_exposure` of equity: `max_exposure` long-only; with shorts `max_exposure / 2`
    long and `max_exposure / 2` short (gross `max_exposure`, dollar neutral). A leg holds k slots:
    "equal" gives each name one slot (leg / k); "inverse_vol" shares the slots of the names with a
    usable volatility (`vols[t]` finite and > 0) in proportion to 1 / vol, and a name without one gets
    one slot. A leg with fewer than k ranked names leaves the empty slots in cash.

    Returns the signed weight (fraction of equity) of every ranked name: 0.0 when not selected. Names
    with a missing or non-finite score are absent (no decision: their position is kept).
    """
    if params.weighting not in WEIGHTINGS:
        raise StrategyError(f"xs_rank: unknown weighting '{params.weighting}'", "valid: " + ", ".join(WEIGHTINGS))
    held = held or {}
    ranked = sorted((t for t, s in scores.items() if s is not None and math.isfinite(s)), key=lambda t: (-scores[t], t))
    longs = _leg(ranked, {t for t in ranked if held.get(t, 0.0) > 0}, params)
    shorts = []
    if params.allow_short:
        others = [t for t in reversed(ranked) if t not in longs]
        shorts = _leg(others, {t for t in others if held.get(t, 0.0) < 0}, params, order=list(reversed(ranked)))
    leg = leg_exposure(params, max_exposure)
    weights = dict.fromkeys(ranked, 0.0)
    for side, names in ((1.0, longs), (-1.0, shorts)):
        for ticker, weight in _leg_weights(names, leg, params, vols).items():
            weights[ticker] = side * weight
    return weights


def _leg(candidates: list[str], keepers: set[str], params: XsParams, order: list[str] | None = None) -> list[str]:
    """k names from `candidates` (best first): the keepers ranked within k + rank_band of `order` (the
    whole ranking from this leg's end; default `candidates`), then the best others."""
    place = {t: i for i, t in enumerate(order or candidates)}
    kept = [t for t in candidates if t in keepers and place[t] < params.k + params.rank_band]
    rest = [t for t in candidates if t not in kept]
    return (kept + rest)[: params.k]


def _leg_weights(names: list[str], leg: float, params: XsParams, vols: Mapping[str, float] | None) -> dict:
    slot = leg / params.k
    if params.weighting == "equal" or not names:
        return dict.fromkeys(names, slot)
    vols = vols or {}
    usable = {t: vols[t] for t in names if vols.get(t) is not None and math.isfinite(vols[t]) and vols[t] > 0}
    inverse = sum(1 / v for v in usable.values())
    return {t: slot * len(usable) * (1 / usable[t]) / inverse if t in usable else slot for t in names}


def equal_weights(names: Sequence[str], max_exposure: float) -> dict[str, float]:
    """`max_exposure` of equity split equally over `names` (the universe's equal-weight benchmark)."""
    return {t: max_exposure / len(names) for t in names}


def check_universe(params: XsParams, n_tickers: int) -> None:
    """Refuse a k the universe cannot fill: k names long, and k more short when shorts are allowed."""
    if params.k > n_tickers:
        raise StrategyError(
            f"xs_rank: k = {params.k} but the universe has {n_tickers} ticker" + ("s" if n_tickers != 1 else ""),
            "lower k" if n_tickers > 1 else "xs_rank ranks a universe: run it on several tickers",
        )
    if params.allow_short and 2 * params.k > n_tickers:
        raise StrategyError(
            f"xs_rank: k = {params.k} long and {params.k} short need {2 * params.k} tickers; "
            f"the universe has {n_tickers}",
            "lower k, or set allow_short = false",
        )


def plan_orders(
    targets: Mapping[str, float],
    positions: Mapping[str, float],
    closes: Mapping[str, float],
    cash: float,
    intended: Mapping[str, float],
    sizing: Sizing,
    n_assets: int,
) -> Plan:
    """Orders that move the book towards `targets` (per ticker, in [-1, 1]; NaN = no decision).

    Each ticker's share of the book is `max_exposure / n_assets`: a target of 1 wants that share of
    equity long, -1 short; the rebalance band is measured in that share (see `plan_weights`).
    """
    share = sizing.max_exposure / n_assets
    weights = {
        ticker: float("nan") if target is None or math.isnan(target) else max(-1.0, min(1.0, target)) * share
        for ticker, target in targets.items()
    }
    return plan_weights(weights, positions, closes, cash, intended, sizing, band_unit=share)


def current_weights(positions: Mapping[str, float], closes: Mapping[str, float], cash: float) -> dict[str, float]:
    """Each position's value over equity at this close (equity = cash + the positions' values)."""
    equity = cash + sum(q * closes[t] for t, q in positions.items() if q)
    return {t: q * closes[t] / equity for t, q in positions.items() if q} if equity > 0 else {}


def universe_orders(
    decided: Mapping[str, float] | None,
    last_decided: Mapping[str, float],
    positions: Mapping[str, float],
    closes: Mapping[str, float],
    cash: float,
    intended: Mapping[str, float],
    sizing: Sizing,
    band_unit: float,
    busy: set | frozenset = frozenset(),
) -> tuple[Plan, dict[str, float], dict[str, float]]:
    """A universe rule's orders at this close, the weights acted on, and the new last decision.

    `decided` is the rule's weights at a decision (None between them). Between decisions, a name whose
    buy was refused since the last one (dropped from `intended`) is decided again with its last weight,
    so a refusal waits one close, not a whole rebalance period. The rebalance band measures from the
    weight each name holds now (its position's value over equity), not from the weight last intended:
    a name whose price moved it past the band is re-sized at a decision, so an equal-weight book is
    rebalanced on its schedule. Names in `busy` (an order still working) are left as they are.
    """
    if decided is None:
        acting = {t: w for t, w in last_decided.items() if w and t not in intended and t in closes}
        new_last = dict(last_decided)
    else:
        acting, new_last = dict(decided), dict(decided)
    acting = {t: w for t, w in acting.items() if t not in busy}
    if not acting:
        return Plan([], dict(intended)), {}, new_last
    now = current_weights(positions, closes, cash)
    held = {t: now.get(t, 0.0) for t in intended}
    return plan_weights(acting, positions, closes, cash, held, sizing, band_unit), acting, new_last


def plan_weights(
    weights: Mapping[str, float],
    positions: Mapping[str, float],
    closes: Mapping[str, float],
    cash: float,
    intended: Mapping[str, float],
    sizing: Sizing,
    band_unit: float,
) -> Plan:
    """Orders that move the book towards `weights` (per ticker, the wanted signed fraction of equity; NaN or
    absent = no decision, the position is kept).

    A ticker is re-sized only when its wanted weight changes side or moves by more than
    `sizing.rebalance_band * band_unit` from what was last intended (`band_unit`: one ticker's share
    of the book, or one slot of a ranked leg). Sizes use equity and prices at this close: closing or
    reversing pays its costs first, then each wanted weight buys whole (or fractional) shares at the
    close plus the costs, rounded towards zero. `Plan.intended` holds the weights as fractions of equity.
    """
    new_intended = dict(intended)
    queued: dict[str, float] = {}
    for ticker, wanted in weights.items():
        if wanted is None or math.isnan(wanted):
            continue
        before = intended.get(ticker)
        if before is None or _differs(wanted, before, band_unit, sizing.rebalance_band):
            new_intended[ticker] = queued[ticker] = wanted
    if not queued:
        return Plan([], new_intended)
    cost = (1 + sizing.slippage_pct) * (1 + sizing.commission_pct) - 1  # per unit of traded value
    value = cash + sum(positions.get(t, 0.0) * closes[t] for t in positions if positions.get(t, 0.0))
    for ticker, wanted in queued.items():  # closing or reversing pays costs before opening
        held = positions.get(ticker, 0.0)
        if held and (wanted == 0 or math.copysign(1, wanted) != math.copysign(1, held)):
            value -= abs(held) * (closes[ticker] * cost + sizing.commission_per_share)
    buffer = value * sizing.cash_buffer
    value -= buffer
    unit = {t: closes[t] * (1 + cost) + sizing.commission_per_share for t in queued}  # a bought share, all in
    deltas = {t: _round(wanted * value / unit[t], sizing) - positions.get(t, 0.0) for t, wanted in queued.items()}

    # Buys are paid from the cash at hand plus what the day's sells bring in, less the buffer. A leg that
    # grew inside the rebalance band holds more than its share, so an equal share for the others would
    # not fit: the opening buys shrink together to the cash there is (the broker would refuse them
    # otherwise). Covering a short is never shrunk: a broker fills the closing part of an order whatever
    # the cash, and only the opening part must be paid for.
    variable = {
        t: closes[t] * (1 + sizing.slippage_pct) * sizing.commission_pct + sizing.commission_per_share for t in queued
    }  # the commission on one share of a fill

    def fee_excess(shares: float, ticker: str) -> float:  # what a minimum commission adds on a small fill
        return max(0.0, sizing.commission_min - abs(shares) * variable[ticker]) if shares else 0.0

    available = cash - buffer
    for ticker, delta in deltas.items():
        if delta < 0:
            available += -delta * (closes[ticker] * (1 - cost) - sizing.commission_per_share) - fee_excess(
                delta, ticker
            )
    asked = {}  # what each opening buy costs, with its order's minimum commission
    for ticker, delta in deltas.items():
        if delta > 0:
            cover = min(delta, max(-positions.get(ticker, 0.0), 0.0))
            available -= cover * unit[ticker]
            if delta > cover:
                asked[ticker] = (delta - cover, (delta - cover) * unit[ticker] + fee_excess(delta, ticker))
    spend = sum(cost_of for _, cost_of in asked.values())
    if spend > available * (1 + 1e-12):  # (no opening buy: nothing to shrink, the loop is empty)
        for ticker, (opened, cost_of) in asked.items():
            # this buy's part of the cash, in proportion to what it asked for; the most shares it pays
            # for at the close plus costs, and plus the minimum commission where that is what binds
            budget = max(available, 0.0) * cost_of / spend
            most = budget / unit[ticker]
            if sizing.commission_min and unit[ticker] > variable[ticker]:
                most = min(most, (budget - sizing.commission_min) / (unit[ticker] - variable[ticker]))
            held, delta = positions.get(ticker, 0.0), deltas[ticker]
            deltas[ticker] = (delta - opened) + _round(min(max(most, 0.0), opened), sizing)
            if not deltas[ticker]:  # nothing bought: decide again at the next close
                _restore(new_intended, intended, ticker)
            else:  # the exposure actually bought (flat after a cover: 0), so the band measures from it
                new_intended[ticker] = queued[ticker] * (held + deltas[ticker]) / (held + delta)
    orders = sorted(((t, d) for t, d in deltas.items() if d), key=lambda o: o[1])  # sells first: their cash pays buys
    return Plan(orders, new_intended)


def _round(shares: float, sizing: Sizing) -> float:
    """Towards zero: whole shares, or millionths when fractional."""
    return math.trunc(shares * 1e6) / 1e6 if sizing.fractional else float(math.trunc(shares))


def _restore(new_intended: dict, intended: Mapping[str, float], ticker: str) -> None:
    if ticker in intended:
        new_intended[ticker] = intended[ticker]
    else:
        new_intended.pop(ticker, None)


def _differs(wanted: float, intended: float, share: float, band: float) -> bool:
    if (wanted == 0) != (intended == 0) or math.copysign(1, wanted) != math.copysign(1, intended):
        return True
    return abs(wanted - intended) > band * share


def per_bar_rate(annual_rate: float) -> float:
    """An annual rate as the rate of one daily bar, as QuantStats converts the Sharpe's risk-free rate."""
    return (1 + annual_rate) ** (1 / 252) - 1


def cash_interest(cash: float, annual_rate: float) -> float:
    """One bar's interest on positive cash, at the daily rate QuantStats' Sharpe subtracts."""
    return cash * per_bar_rate(annual_rate) if annual_rate and cash > 0 else 0.0


def dividend_cash(held: Mapping[str, float], dividends: Mapping[str, float]) -> float:
    """The cash a book's dividends bring on their ex-date: shares held at the last close times the dividend
    per share (a short position pays it). Backtrader and the paper account's local broker both book it."""
    return float(sum(held.get(t, 0.0) * d for t, d in dividends.items() if d and d == d))

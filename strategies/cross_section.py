"""Universe strategies: one decision for all names at once, on a fixed schedule of sessions."""

from __future__ import annotations

from strategies.base import TargetStrategy
from strategies.decision import (
    XsParams,
    backtrader_params,
    check_universe,
    equal_weights,
    rebalance_due,
    slot_weight,
    trailing_vol,
    xs_weights,
)


class XsRank(TargetStrategy):
    """Rank the universe by the forecast (the feeds' `y_pred` line) every `rebalance_every` sessions: long the
    top k, short the bottom k if allowed (`strategies.decision.xs_weights`)."""

    universe = True
    forecast = XsParams.forecast  # the default of the `forecast` parameter, which picks the model
    params = backtrader_params(XsParams)  # declared once, in strategies.decision.XsParams

    def __init__(self) -> None:
        super().__init__()
        self._rule = XsParams(**{name: getattr(self.p, name) for name, _ in backtrader_params(XsParams)})

    @classmethod
    def check_universe_size(cls, params: dict, n_tickers: int) -> None:
        check_universe(XsParams.of(params), n_tickers)

    def weights(self, session: int, datas: list) -> dict[str, float] | None:
        if not rebalance_due(session, self.p.rebalance_every):
            return None
        vols = None
        if self._rule.weighting == "inverse_vol":
            vols = {d._name: trailing_vol(d.close.get(size=min(len(d), self.p.vol_window + 1))) for d in datas}
        scores = {d._name: d.y_pred[0] for d in datas}
        chosen = xs_weights(scores, self._rule, self.p.max_exposure, held=self._intended, vols=vols)
        return {name: chosen.get(name, float("nan")) for name in scores}  # NaN: no score, no decision

    def band_unit(self, weights: dict[str, float]) -> float:
        return slot_weight(self._rule, self.p.max_exposure)


class EqualWeight(TargetStrategy):
    """The universe's benchmark: `max_exposure` split equally over the names trading, rebalanced on `xs_rank`'s
    schedule (a name that drifted past the band from its equal weight is re-sized at each decision)."""

    universe = True
    params = tuple((name, default) for name, default in backtrader_params(XsParams) if name == "rebalance_every")

    def weights(self, session: int, datas: list) -> dict[str, float] | None:
        if not rebalance_due(session, self.p.rebalance_every):
            return None
        return equal_weights([d._name for d in datas], self.p.max_exposure)

    def band_unit(self, weights: dict[str, float]) -> float:
        return self.p.max_exposure / max(len(weights), 1)

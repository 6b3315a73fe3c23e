"""The walk-forward's progress hooks (standard library only, so the CLI can subclass it cheaply)."""

from __future__ import annotations


class Progress:
    """Receives walk-forward progress; the CLI draws bars from it. Methods do nothing by default."""

    def stage(self, text: str) -> None:
        """Called when a step without a count starts (loading data, importing TensorFlow)."""

    def fold(self, ticker: str, done: int, total: int) -> None:
        """Called after fold `done` of `total` for `ticker`."""

    def epoch(self, done: int, total: int, logs: dict | None = None) -> None:
        """Called after each training epoch of the current fold; `logs` as `LSTMForecaster.fit` gives them."""

    def predicted(self, ticker: str, fold: int, table) -> None:
        """Called with each newly computed fold's rows of the predictions table (not for folds restored
        from checkpoints). Raising here stops the walk-forward."""

    def tasks(self, done: int, total: int) -> None:
        """Called when tickers run as parallel tasks (executor local or ray): `done` of `total` finished."""

"""User-facing errors of the forecasting package: one message plus a hint, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ForecastingError(Exception):
    """An error caused by the user's input; the CLI prints it as one line with its hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def __reduce__(self):  # keep the hint when raised in a worker process
        return self.__class__, (self.message, self.hint)


class DataError(ForecastingError):
    """Price data that cannot be loaded or fails validation."""


class FeatureError(ForecastingError):
    """An unknown or malformed feature name."""


class NotFittedError(ForecastingError):
    """A model used before `fit`."""


def did_you_mean(name: str, choices: Iterable[str], otherwise: str | None = None, cutoff: float = 0.5) -> str:
    """The one 'did you mean ...?' hint for a misspelt name (difflib, at `cutoff`); else `otherwise`,
    or the list of valid names. Every command's suggestions come from here."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=cutoff)
    if close:
        return f"did you mean '{close[0]}'?"
    return otherwise if otherwise is not None else "valid names: " + ", ".join(sorted(choices))

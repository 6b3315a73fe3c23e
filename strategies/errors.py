"""User-facing errors of the strategies package (it imports nothing of the other packages)."""

from __future__ import annotations


class StrategyError(Exception):
    """Bad strategy name, parameter or input table; printed by the CLI as one line with a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def __reduce__(self):  # keep the hint when raised in a worker process
        return self.__class__, (self.message, self.hint)

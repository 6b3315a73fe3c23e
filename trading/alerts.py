"""Alerts: a condition that opens once, stays open while it lasts, and resolves when it clears.

Each opening and each resolution is one log line and, when the account's `serve.webhook_url` is
set, one JSON POST:

    {"text": "lstm-trader: spy: no_data — ...", "content": "<the same>",
     "account": "spy", "kind": "no_data", "status": "open" | "resolved",
     "message": "...", "at": "2026-12-01T21:30:00+00:00"}

`text` is what a Slack incoming webhook shows and `content` what a Discord one shows; other
receivers read the fields. Open alerts persist in the account's `serve/alerts.json`, so a restart
neither forgets them nor announces them again.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

from backtests.rundir import write_json

KINDS = {
    "step_failed": "the step failed after its retries",
    "no_data": "no new bar by the close plus the grace period",
    "equity_gap": "equity drifted from the backtest replay of the same predictions",
    "target_mismatch": "decisions differ from the backtest's on the same predictions",
    "model_age": "the model is older than serve.max_model_age sessions",
}

log = logging.getLogger("lstm_trader.serve")


def payload(account: str, kind: str, status: str, message: str, at: str) -> dict:
    verb = "" if status == "open" else "resolved: "
    text = f"lstm-trader: {account}: {verb}{kind} — {message}"
    return {
        "text": text,
        "content": text,
        "account": account,
        "kind": kind,
        "status": status,
        "message": message,
        "at": at,
    }


def post(url: str, body: dict, timeout: float = 5.0) -> str | None:
    """POST `body` as JSON; returns None, or why it failed (the caller logs it; an alert is never lost
    from the log because a receiver is down)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "lstm-trader"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


class AlertBook:
    """The open alerts of one account."""

    def __init__(self, account: str, folder: Path, webhook: str | None) -> None:
        self.account, self.path, self.webhook = account, Path(folder) / "serve" / "alerts.json", webhook
        try:
            self.open: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except ValueError:
            self.open = {}
        self.sent: list[dict] = []  # payloads of this process (for /metrics counts)

    def raise_(self, kind: str, message: str, at: str) -> dict | None:
        """Open `kind` (a new message on an open alert updates it quietly); returns the payload to send."""
        if kind in self.open:
            self.open[kind]["message"] = message
            self._save()
            return None
        self.open[kind] = {"kind": kind, "message": message, "since": at}
        self._save()
        return self._announce(kind, "open", message, at)

    def resolve(self, kind: str, at: str) -> dict | None:
        if kind not in self.open:
            return None
        alert = self.open.pop(kind)
        self._save()
        return self._announce(kind, "resolved", f"was: {alert['message']}", at)

    def _announce(self, kind: str, status: str, message: str, at: str) -> dict:
        body = payload(self.account, kind, status, message, at)
        (log.warning if status == "open" else log.info)(
            body["text"], extra={"event": f"alert_{status}", "account": self.account, "kind": kind}
        )
        self.sent.append(body)
        return body

    def _save(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        write_json(self.path, self.open)

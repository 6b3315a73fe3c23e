"""The service's status page and its Prometheus metrics, from the accounts' snapshots.

The page is plain HTML with Plotly loaded from the service itself (`/assets/plotly.min.js`, the
plotly package's own file): it works with no network. It reloads itself every minute.
"""

from __future__ import annotations

import functools
import html

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1100px; padding: 0 1rem;
       color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
td, th { padding: .2rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 0 2.5rem; }
.alert { background: #fdecea; border-left: 4px solid #c0392b; padding: .4rem .8rem; margin: .3rem 0; }
.ok { color: #1e7d32; } .muted { color: #777; font-size: .85rem; }
"""


@functools.cache
def plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def _fmt(value, spec: str = ",.2f", empty: str = "—") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return empty
    return format(value, spec)


def _table(rows: list[tuple], header: tuple | None = None, table_id: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}>{head}{body}</table>"


def equity_chart(name: str, curve: dict) -> str:
    """Equity against the backtest replay of the same predictions (a Plotly div)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=curve["dates"], y=curve["equity"], name="paper account", mode="lines")
    fig.add_scatter(x=curve["dates"], y=curve["backtest"], name="backtest replay", mode="lines", line={"dash": "dot"})
    fig.update_layout(
        template="plotly_white",
        height=320,
        margin={"l": 70, "r": 20, "t": 10, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "y": 1.08, "x": 0},
        yaxis={"title": "equity"},
        xaxis={"type": "category", "nticks": 8},  # one step a session: no weekend gaps, no hour ticks
    )
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"equity-{name}",
        config={"displaylogo": False, "responsive": True},
        default_width="100%",
    )


def _quality_rows(health: dict) -> list[tuple]:
    live, ref = health.get("live") or {}, health.get("reference")
    if health.get("universe"):
        keys = [("names x days scored", "n", ",d"), ("mean daily rank IC", "rank_ic", "+.4f")]
    elif health.get("variance"):
        keys = [
            ("forecasts scored", "n", ",d"),
            ("QLIKE against the realized variance (lower is better)", "qlike", ".4f"),
        ]
    else:
        keys = [
            ("predictions scored", "n", ",d"),
            ("Theil's U2 (below 1 beats a zero forecast)", "u2", ".3f"),
            ("directional accuracy", "directional_accuracy", ".1%"),
            ("base rate (share of days up)", "base_rate", ".1%"),
        ]
    return [(label, _fmt(live.get(key), spec), _fmt(ref.get(key), spec) if ref else "—") for label, key, spec in keys]


def account_section(runner) -> str:
    name = html.escape(runner.name)
    status, latest, health = (runner.snap.get(k) or {} for k in ("status", "latest", "health"))
    plan = runner.plan
    head = (
        f"<h2>{name} <span class='muted'>{html.escape(runner.broker)} broker · "
        f"{html.escape(runner.strategy)} · {html.escape(runner.state)}</span></h2>"
    )
    alerts = (
        "".join(
            f"<div class='alert'><b>{html.escape(a['kind'])}</b> since {html.escape(a['since'])}: "
            f"{html.escape(a['message'])}</div>"
            for a in runner.book.open.values()
        )
        or "<p class='ok'>no open alerts</p>"
    )
    next_run = (
        f"{plan.session.date()} at {plan.due.tz_convert('America/New_York'):%Y-%m-%d %H:%M} New York time"
        if plan
        else "—"
    )
    if not status.get("steps"):
        return head + alerts + f"<p>no step yet; next: {html.escape(next_run)}</p>"
    drift = status.get("drift") or {}
    summary = _table(
        [
            ("sessions", f"{status['steps']} ({status['first']} to {status['last']})"),
            ("equity", _fmt(status.get("equity"))),
            ("cash", _fmt(status.get("cash"))),
            ("P&L since start", f"{_fmt(status.get('pnl'), '+,.2f')} ({_fmt(status.get('return'), '+.2%')})"),
            ("backtest replay equity", _fmt(drift.get("backtest_equity"))),
            (
                "gap to the replay (last / max)",
                f"{_fmt(drift.get('last_equity_drift'), '.1e')} / {_fmt(drift.get('max_equity_drift'), '.1e')}",
            ),
            ("decisions unlike the backtest's", str(drift.get("target_mismatches", "—"))),
            ("next run", next_run),
        ],
        table_id=f"summary-{runner.name}",
    )
    positions = _table(
        [(t, _fmt(q, ",g")) for t, q in (status.get("positions") or {}).items()] or [("flat", "")],
        ("position", "shares"),
        table_id=f"positions-{runner.name}",
    )
    variance = latest.get("forecasts") == "variance"  # y_pred is a log variance: show the volatility it means
    signals = _table(
        [
            (
                p["ticker"],
                _fmt(p.get("forecast_vol"), ".1%") if variance else _fmt(p.get("y_pred"), "+.3%"),
                _fmt(p.get("predicted_close")),
                _fmt(p.get("close")),
                _fmt(p.get("target"), "+.2f"),
            )
            for p in latest.get("predictions", [])
        ],
        (
            f"last signals ({latest.get('date')})",
            "volatility forecast" if variance else "predicted",
            "predicted close",
            "close",
            "target",
        ),
        table_id=f"signals-{runner.name}",
    )
    orders = ", ".join(
        f"{'buy' if o['qty'] > 0 else 'sell'} {abs(o['qty']):g} {o['symbol']} ({o['status']})"
        for o in latest.get("orders", [])
    )
    models = _table(
        [
            (
                owner,
                str(m["fold"]),
                m["trained_through"],
                str(m["sessions_served"]),
                str(m["next_retrain_in"]),
            )
            for owner, m in (latest.get("models") or {}).items()
        ],
        ("model", "fold", "trained through", "sessions old", "retrains in"),
        table_id=f"models-{runner.name}",
    )
    reference = health.get("reference")
    quality = _table(
        _quality_rows(health),
        ("forecast quality", "live since the start", "research run" if reference else "research run (none set)"),
        table_id=f"quality-{runner.name}",
    )
    ref_note = (
        f"<p class='muted'>research run: {html.escape(reference['run'])}, {reference['span'][0]} to "
        f"{reference['span'][1]}</p>"
        if reference
        else "<p class='muted'>set serve.reference_run in the account's config.toml to a run of the same "
        "recipe to see its out-of-sample quality here</p>"
    )
    chart = equity_chart(runner.name, runner.snap["equity"]) if runner.snap.get("equity") else ""
    return (
        head
        + alerts
        + chart
        + f"<div class='grid'><div>{summary}</div><div>{positions}{models}</div></div>"
        + signals
        + f"<p>orders for the next open: {html.escape(orders or 'none')}</p>"
        + quality
        + ref_note
    )


class StatusPage:
    """The page, rendered again only when a snapshot or an alert changed."""

    def __init__(self, service) -> None:
        self.service, self.key, self.cached = service, None, ""

    def html(self) -> str:
        service = self.service
        key = tuple((r.version, r.state, r.plan) for r in service.runners.values())
        if key != self.key:
            self.cached, self.key = self.render(), key
        return self.cached

    def render(self) -> str:
        service = self.service
        clock = "simulated clock" if service.clock.simulated else "clock"
        sections = "".join(account_section(r) for r in service.runners.values())
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='refresh' content='60'><title>lstm-trader serve</title>"
            f"<style>{STYLE}</style><script src='/assets/plotly.min.js'></script></head><body>"
            f"<h1>lstm-trader: {len(service.runners)} paper account(s)</h1>"
            f"<p class='muted'>{clock}: {service.clock.now():%Y-%m-%d %H:%M} UTC · API: "
            "<a href='/docs'>/docs</a> · <a href='/health'>/health</a> · <a href='/metrics'>/metrics</a></p>"
            f"{sections}</body></html>"
        )


def metrics_text(service) -> bytes:
    """The Prometheus exposition of every account's numbers (prometheus_client's own writer)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            gauges = {
                "last_step_timestamp_seconds": "when the last step finished (service clock, Unix time)",
                "last_session_timestamp_seconds": "the last stepped session (Unix time of its date)",
                "next_run_timestamp_seconds": "when the next step is due (service clock, Unix time)",
                "equity": "account equity at the last close",
                "equity_drift": "relative gap between equity and the backtest replay, last session",
                "target_mismatches": "decisions unlike the backtest's on the same predictions",
                "live_u2": "Theil's U2 of the live predictions scored so far",
                "live_directional_accuracy": "share of live predictions with the right sign",
                "live_rank_ic": "mean daily rank IC of a universe account's live predictions",
                "live_qlike": "QLIKE of a volatility account's live variance forecasts",
                "model_age_sessions": "sessions the oldest model of the account has served",
                "open_alerts": "alerts open now",
            }
            families = {k: GaugeMetricFamily(f"lstm_trader_{k}", doc, labels=["account"]) for k, doc in gauges.items()}
            steps = CounterMetricFamily("lstm_trader_steps", "sessions stepped by this process", labels=["account"])
            failures = CounterMetricFamily(
                "lstm_trader_step_failures", "failed step attempts by this process", labels=["account"]
            )
            for name, r in service.runners.items():
                status, health = r.snap.get("status") or {}, r.snap.get("health") or {}
                live = health.get("live") or {}
                values = {
                    "last_step_timestamp_seconds": r.last_step_at.timestamp() if r.last_step_at is not None else None,
                    "last_session_timestamp_seconds": pd.Timestamp(r.last_step, tz="UTC").timestamp()
                    if r.last_step
                    else None,
                    "next_run_timestamp_seconds": r.plan.due.timestamp() if r.plan else None,
                    "equity": status.get("equity"),
                    "equity_drift": (status.get("drift") or {}).get("last_equity_drift"),
                    "target_mismatches": (status.get("drift") or {}).get("target_mismatches"),
                    "live_u2": live.get("u2"),
                    "live_directional_accuracy": live.get("directional_accuracy"),
                    "live_rank_ic": live.get("rank_ic"),
                    "live_qlike": live.get("qlike"),
                    "model_age_sessions": max(
                        (m["sessions_served"] for m in (status.get("models") or {}).values()), default=None
                    ),
                    "open_alerts": len(r.book.open),
                }
                for key, value in values.items():
                    if value is not None:
                        families[key].add_metric([name], float(value))
                steps.add_metric([name], r.steps_total)
                failures.add_metric([name], r.failures_total)
            yield from families.values()
            yield steps
            yield failures

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)

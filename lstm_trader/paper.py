"""`lstm-trader paper init|step|status|replay|latest`."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lstm_trader.console import HELP, ConfigArg, SetOpt, console, progress_bars, user_errors

paper_app = typer.Typer(
    no_args_is_help=True,
    context_settings=HELP,
    help="Trade the chosen model every day on a local paper ledger or an Alpaca paper account.",
)

NameArg = Annotated[str, typer.Argument(help="the account's name (a folder under --paper-dir)")]
RootOpt = Annotated[Path, typer.Option("--paper-dir", help="folder that holds the paper accounts")]
DateOpt = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="the session to step (ISO date); default: the data's last bar"),
]


@paper_app.command("init")
@user_errors
def init(
    config: ConfigArg = None,
    set_: SetOpt = None,
    name: Annotated[str, typer.Option(help="the account's name")] = "default",
    broker: Annotated[
        str,
        typer.Option(
            help="local (simulated fills at the next open; offline) or alpaca "
            "(paper account; keys from APCA_API_KEY_ID / APCA_API_SECRET_KEY)"
        ),
    ] = "local",
    paper_dir: RootOpt = Path("paper"),
    volatility: Annotated[
        Path | None,
        typer.Option(
            help="a volatility config (e.g. configs/volatility.toml) whose LSTM sizes lstm_signal's trades "
            '(vol_forecast = "vol_lstm"): the account then serves both networks on its own data'
        ),
    ] = None,
    volatility_set: Annotated[
        list[str] | None,
        typer.Option("--volatility-set", help="override a key of the --volatility config: section.key=value"),
    ] = None,
) -> None:
    """Create a paper account: the config, an empty ledger and, on the first step, the model.

    Return configs trade lstm_signal or xs_rank; volatility configs trade vol_target, sized by the
    LSTM's variance forecast; and lstm_signal can be sized by a second network's variance forecast
    with --volatility.
    """
    from trading.account import init_account

    folder = init_account(config, set_, name, broker, paper_dir, volatility, volatility_set)
    console.print(f"created paper account '{name}' ({broker} broker) in {folder}", highlight=False)
    where = "" if paper_dir == Path("paper") else f" --paper-dir {shlex.quote(str(paper_dir))}"
    console.print(
        f"next: lstm-trader paper step {name}{where} (after each close), or "
        f"lstm-trader paper replay {name}{where} --from D1 --to D2",
        highlight=False,
        soft_wrap=True,
    )


@paper_app.command("step")
@user_errors
def step(name: NameArg, date: DateOpt = None, paper_dir: RootOpt = Path("paper")) -> None:
    """After the close of D: settle, retrain if the walk-forward schedule says so, predict, decide, send orders.

    Missed sessions since the last step are stepped first, in order; a day already stepped sends nothing.
    """
    from trading.account import Account

    with Account(paper_dir, name) as account:
        for report in account.step(date.date() if date else None, on_day=_print_step):
            pass


def _print_step(report) -> None:
    if report.status != "done":
        for note in report.notes:
            console.print(note, highlight=False)
        return
    orders = ", ".join(f"{'buy' if o['qty'] > 0 else 'sell'} {abs(o['qty']):g} {o['symbol']}" for o in report.orders)
    trained = f"; trained fold {_spans(report.trained)}" if report.trained else ""
    reconciled = f"; {report.reconciled} order(s) found at the broker, not resent" if report.reconciled else ""
    equity = f"{report.equity:,.2f}" if report.equity is not None else "—"
    console.print(
        f"{report.date}  equity {equity}  fills {report.fills}  orders: {orders or 'none'}{trained}{reconciled}",
        highlight=False,
        soft_wrap=True,  # one line per session: a cron log reads (and greps) it whole
    )


def _spans(folds: list[int]) -> str:
    """Fold numbers as runs: [0, 1, 2, 5, 0, 1] -> "0-2, 5, 0-1" (a first step trains every fold so far)."""
    runs: list[list[int]] = []
    for fold in folds:
        if runs and fold == runs[-1][-1] + 1:
            runs[-1].append(fold)
        else:
            runs.append([fold])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


@paper_app.command("replay")
@user_errors
def replay_cmd(
    name: NameArg,
    from_: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first session")],
    to: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last session")],
    paper_dir: RootOpt = Path("paper"),
) -> None:
    """Step every session from --from to --to over historical data (local broker), then compare with the backtest."""
    from trading.account import Account, replay
    from trading.readout import status

    with Account(paper_dir, name) as account, progress_bars() as bars:
        task = bars.add_task("sessions", total=None)
        reports = replay(
            account,
            from_.date(),
            to.date(),
            on_day=lambda report, total: bars.update(task, advance=report is not None, total=total),
        )
        state = status(account)
    done = [r for r in reports if r.status == "done"]
    console.print(
        f"replayed {len(done)} session{'s' if len(done) != 1 else ''} of '{name}' "
        f"({len(reports) - len(done)} already done)",
        highlight=False,
    )
    _print_status(state)


@paper_app.command("status")
@user_errors
def status_cmd(
    name: NameArg,
    paper_dir: RootOpt = Path("paper"),
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """Positions, cash, equity, P&L since the start, the last signal, the model's age and the drift from the backtest."""
    from backtests.rundir import json_safe
    from trading.account import Account
    from trading.readout import status

    with Account(paper_dir, name).reading() as account:  # answers while a step holds the account
        state = status(account)
    if as_json:  # NaN as null: the output is JSON any parser reads (jq, the service's clients)
        typer.echo(json.dumps(json_safe(state), indent=2, default=str))
    else:
        _print_status(state)


@paper_app.command("latest")
@user_errors
def latest_cmd(
    name: NameArg,
    paper_dir: RootOpt = Path("paper"),
    as_json: Annotated[
        bool, typer.Option("--json", help="print it as JSON (what GET /accounts/NAME/latest returns)")
    ] = False,
) -> None:
    """The last close's prediction, the decision taken on it (orders for the next open) and the model's fold and age."""
    from backtests.rundir import json_safe
    from trading.account import Account
    from trading.readout import latest

    with Account(paper_dir, name).reading() as account:
        state = latest(account)
    if as_json:
        typer.echo(json.dumps(json_safe(state), indent=2, default=str))
        return
    if state["date"] is None:
        console.print(f"paper account '{name}': no step yet (lstm-trader paper step {name})", highlight=False)
        return
    view = Table(
        title=f"paper account '{name}': the close of {state['date']} ({state['target']}, {state['horizon']}-day)",
        title_justify="left",
    )
    sized = any(p.get("forecast_vol") is not None for p in state["predictions"])
    predicted = "log variance" if state.get("forecasts") == "variance" else "predicted"
    columns = (
        ("ticker", predicted, "close", "predicted close") + (("volatility",) if sized else ()) + ("target", "fold")
    )
    for column in columns:
        view.add_column(column, justify="left" if column == "ticker" else "right")
    for p in state["predictions"]:
        vol = p.get("forecast_vol")
        view.add_row(
            p["ticker"],
            f"{p['y_pred']:+.3%}" if state["target"] == "log_return" else f"{p['y_pred']:+.4f}",
            f"{p['close']:,.2f}",
            f"{p['predicted_close']:,.2f}" if p["predicted_close"] is not None else "—",
            *((f"{vol:.1%}" if vol is not None else "—",) if sized else ()),
            f"{p['target']:+.2f}" if p["target"] == p["target"] else "—",
            str(p["fold"]),
        )
    console.print(view)
    orders = ", ".join(
        f"{'buy' if o['qty'] > 0 else 'sell'} {abs(o['qty']):g} {o['symbol']} ({o['status']})" for o in state["orders"]
    )
    console.print(f"orders for the next open: {orders or 'none'}", highlight=False, soft_wrap=True)
    for owner, model in state["models"].items():
        console.print(
            f"model {owner}: fold {model['fold']}, trained through {model['trained_through']}, "
            f"{model['sessions_served']} sessions old, retrains in {model['next_retrain_in']}",
            highlight=False,
            soft_wrap=True,
        )


def _print_status(state: dict) -> None:
    if not state.get("steps"):
        console.print(
            f"paper account '{state['name']}' ({state['broker']} broker): no step yet "
            f"(lstm-trader paper step {state['name']})",
            highlight=False,
        )
        return
    view = Table(title=f"paper account '{state['name']}'", show_header=False, title_justify="left")
    view.add_column("", style="bold")
    view.add_column("")
    positions = ", ".join(f"{t} {q:g}" for t, q in state["positions"].items()) or "flat"
    rows = [
        ("broker / strategy", f"{state['broker']} / {state['strategy']}"),
        ("sessions", f"{state['steps']} ({state['first']} to {state['last']})"),
        ("equity", f"{state['equity']:,.2f}"),
        ("cash", f"{state['cash']:,.2f}"),
        ("positions", positions),
        ("P&L since start", f"{state['pnl']:+,.2f} ({state['return']:+.2%})"),
    ]
    if state.get("universe"):  # a ranked portfolio: the day's ranking in one line, and its weights
        ranked = sorted(state["last_signal"], key=lambda s: (-s["y_pred"], s["ticker"]))
        day = ranked[0]["date"] if ranked else "—"
        rows.append(("last ranking", f"{day}: " + " > ".join(s["ticker"] for s in ranked)))
        weights = {s["ticker"]: s["target"] for s in ranked if s["target"] == s["target"]}
        rows.append(
            (
                "last decision",
                ", ".join(f"{t} {w:+.1%}" for t, w in weights.items() if w) or "none at that close (not a rebalance)",
            )
        )
    else:
        for signal in state["last_signal"]:
            vol = signal.get("forecast_vol")
            if state.get("forecasts") == "variance":
                said = f"volatility forecast {vol:.1%} a year" if vol is not None else "no volatility forecast"
            else:
                said = f"predicted {signal['y_pred']:+.4%}" + (f", volatility forecast {vol:.1%}" if vol else "")
            rows.append(
                (f"last signal {signal['ticker']}", f"{signal['date']}: {said} -> target {signal['target']:+.2f}")
            )
    for ticker, model in state["models"].items():
        rows.append(
            (
                f"model {ticker}",
                f"fold {model['fold']}, trained through {model['trained_through']}, "
                f"{model['sessions_served']} sessions old; retrains in "
                f"{model['next_retrain_in']} sessions",
            )
        )
    if state["open_orders"]:
        rows.append(("open orders", ", ".join(o["client_order_id"] for o in state["open_orders"])))
    rows.append(("rejected orders", str(state["rejected_orders"])))
    drift = state["drift"]
    rows.append(
        (
            "drift vs backtest",
            f"{drift['max_equity_drift']:.1e} max relative equity gap over {drift['days']} "
            f"sessions; {drift['target_mismatches']} target mismatches",
        )
    )
    for key, value in rows:
        view.add_row(key, value)
    console.print(view)

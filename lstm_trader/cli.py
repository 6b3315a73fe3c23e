"""The `lstm-trader` command line: the app, its command groups (`lstm_trader.commands`, `paper`, `serve`)
put together, and the entry point. Every user error is one line plus a hint and exit code 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lstm_trader.commands.audit import audit, sensitivity
from lstm_trader.commands.data import data_fetch, forecast_cmd
from lstm_trader.commands.ledger import ledger_cmd
from lstm_trader.commands.research import backtest, compare, report, run
from lstm_trader.commands.tune import tune
from lstm_trader.console import HELP, errors
from lstm_trader.paper import paper_app
from lstm_trader.serve import serve

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP,
    help="Walk-forward stacked-LSTM forecasts, traded in Backtrader, reported with QuantStats.",
)
data_app = typer.Typer(
    no_args_is_help=True,
    context_settings=HELP,
    help="Data sources: fill the download cache (Yahoo or Alpaca) ahead of a run.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("lstm-trader")
        except PackageNotFoundError:  # run from a source tree that is not installed
            number = "unknown (not installed)"
        typer.echo(f"lstm-trader {number}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Walk-forward stacked-LSTM forecasts, traded in Backtrader, reported with QuantStats."""
    if ctx.invoked_subcommand is None:  # bare `lstm-trader`: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit()


app.add_typer(data_app, name="data")
app.add_typer(paper_app, name="paper")
app.command("serve")(serve)
for command in (run, report, backtest, compare, audit, tune, sensitivity):
    app.command()(command)
app.command("ledger")(ledger_cmd)
app.command("forecast")(forecast_cmd)
data_app.command("fetch")(data_fetch)


def main(argv: list[str] | None = None) -> int:
    """The console entry point: the app, with usage errors (unknown option, bad value, missing
    argument) printed as one `error:` line plus a hint, like every other user error, exit 2."""
    from lstm_trader.console import plain_metavars

    command = typer.main.get_command(app)
    plain_metavars(command)
    try:
        return command(args=argv, prog_name="lstm-trader", standalone_mode=False) or 0
    except _usage_errors() as exc:
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "lstm-trader"
        message = " ".join(exc.format_message().split())
        errors.print(f"error: {message} (hint: {command} -h)", markup=False, highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2) or 2)
    except typer.Abort:
        errors.print("aborted", markup=False)
        return 130


def _usage_errors() -> tuple[type[Exception], ...]:
    """Typer's own exceptions (it vendors Click from 0.2x on), and Click's for older Typer."""
    found: list[type[Exception]] = []
    try:
        from typer.exceptions import TyperException

        found.append(TyperException)
    except ImportError:  # pragma: no cover - older Typer
        pass
    try:
        import click

        found.append(click.ClickException)
    except ImportError:
        pass
    return tuple(found)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

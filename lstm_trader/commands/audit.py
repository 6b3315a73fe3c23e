"""`lstm-trader audit` (the look-ahead audit) and `sensitivity` (the same predictions at other costs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lstm_trader.console import (
    ConfigArg,
    ExecutorOpt,
    LedgerOpt,
    RayAddressOpt,
    RichProgress,
    SetOpt,
    WorkersOpt,
    connect,
    console,
    execution_sets,
    progress_bars,
    user_errors,
)
from lstm_trader.views import (
    _bp,
)


@user_errors
def audit(
    config: ConfigArg = None,
    set_: SetOpt = None,
    date: Annotated[
        list[str] | None,
        typer.Option(
            help="a cut date D (ISO; repeatable); default: a fold start "
            "mid-span, the session before it and one inside it"
        ),
    ] = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Prove there is no look-ahead: change every price after a date D and rerun.

    For a universe model (model.scope = global) each D changes one ticker's prices (another one at each
    D), which shows leakage across tickers too. For each D, checks that no prediction, decision, fill or equity value of any strategy made on or
    before D changed, and that every prediction's model was trained on targets known by its date.
    Exit code 1 if anything did. Costs one walk-forward per cut date, plus one.
    """
    from backtests.audit import parse_dates, run_audit
    from backtests.config import load_config
    from backtests.experiment import load_experiment_prices

    cfg = load_config(config, (set_ or []) + execution_sets(executor, workers, ray_address))
    connect(cfg)
    prices = load_experiment_prices(cfg)
    cuts = parse_dates(cfg, prices, date)
    with progress_bars() as bars:
        result = run_audit(cfg, prices, cuts, RichProgress(bars))
    view = Table(title="Look-ahead audit: prices after D changed; what was made on or before D must not move")
    from forecasting.tasks import task_of

    universe = task_of(cfg.model).universe
    for col in (
        ("D",)
        + (("changed",) if universe else ())
        + (
            "predictions",
            "decisions",
            "fills",
            "equity days",
            "later preds moved",
        )
    ):
        view.add_column(col, justify="right")
    for cut in result.cuts:
        view.add_row(
            str(cut.date.date()),
            *((cut.perturbed,) if universe else ()),
            f"{cut.predictions_changed}/{cut.predictions_checked}",
            f"{cut.decisions_changed}/{cut.decisions_checked}",
            f"{cut.fills_changed}/{cut.fills_checked}",
            f"{cut.equity_days_changed}/{cut.equity_days_checked}",
            str(cut.later_changed),
        )
    console.print(view)
    console.print(
        "changed/checked on or before D, over every strategy; 'later preds moved' shows the "
        "perturbation did reach the model"
    )
    console.print(
        f"predictions whose model was trained on a target after their date: "
        f"{result.trained_after} of {result.predictions}"
    )
    for cut in result.cuts:
        if cut.changed_strategies:
            console.print(f"{cut.date.date()}: moved by later prices: {', '.join(cut.changed_strategies)}")
    if result.passed:
        console.print("[green]passed[/]: nothing made on or before D depends on prices after it")
    else:
        console.print("[red]FAILED[/]: something made on or before D depends on later prices")
        raise typer.Exit(1)


@user_errors
def sensitivity(
    run_dir: Annotated[Path, typer.Argument(help="a run dir written by `lstm-trader run` or `backtest`")],
    costs: Annotated[str, typer.Option(help="costs per side in basis points, comma-separated")] = "0,2,5,10,20,50",
    ledger: LedgerOpt = None,
) -> None:
    """Trade the run's predictions again at other costs: Sharpe and return per cost, break-even costs.

    Writes sensitivity.csv and break_even.csv into the run dir (`report` then plots them); each
    cost of the LSTM strategies is a configuration tried, so it goes into the trial ledger.
    """
    from backtests.sensitivity import parse_costs, run_sensitivity

    grid = parse_costs(costs)
    with console.status(f"backtesting every strategy at {len(grid)} costs"):
        run, table, even = run_sensitivity(run_dir, grid, ledger)
    view = Table(title="Sharpe by cost per side (bp)")
    view.add_column("book", justify="left")
    view.add_column("strategy", justify="left")
    for cost in grid:
        view.add_column(f"{cost:g}", justify="right")
    for (book, strategy), rows in table.groupby(["ticker", "strategy"], sort=False):
        view.add_row(book, strategy, *(f"{v:.2f}" for v in rows.sort_values("cost_bp")["sharpe"]))
    console.print(view)
    for row in even.itertuples():
        console.print(
            f"{row.strategy} on {row.book}: Sharpe falls to buy-and-hold's at "
            f"{_bp(row.break_even_vs_buy_and_hold_bp, grid)} and to 0 at "
            f"{_bp(row.break_even_vs_zero_bp, grid)} per side"
        )
    console.print(f"saved {run / 'sensitivity.csv'} and {run / 'break_even.csv'}", soft_wrap=True)

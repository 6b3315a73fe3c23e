"""`lstm-trader ledger`: the trial ledger, per data set: N, V, best DSR, SPA p and PBO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtests.errors import BacktestError
from backtests.rundir import check_output_file
from lstm_trader.console import (
    IDENTITY,
    LedgerOpt,
    WideOpt,
    console,
    fitted_table,
    show,
    user_errors,
)
from lstm_trader.views import (
    _fmt,
    _pct,
    short_source,
)


@user_errors
def ledger_cmd(
    data: Annotated[
        str | None, typer.Option(help="a data fingerprint (or its first characters): list its configurations")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the rows shown to this CSV file")] = None,
    ledger: LedgerOpt = None,
    wide: WideOpt = False,
) -> None:
    """The trial ledger: per data set, the configurations tried (N), their Sharpes' spread (V), SPA, PBO.

    Without --data, one line per data fingerprint: N, V, the best configuration's deflated Sharpe,
    Hansen's SPA p-values (does the best beat the benchmark, and cash, after accounting for all?) and
    the probability of backtest overfitting. With --data, that data's configurations, one line each
    (kind, when, span, annualised Sharpe, settings). The deflated Sharpe of a run counts them."""
    from backtests.rundir import write_csv
    from backtests.trials import TrialLedger, ledger_configurations, ledger_summary, open_trial_ledger

    if csv is not None:
        check_output_file(csv, "--csv")
    if ledger is not None and not TrialLedger(ledger).path.is_file():  # --ledger names one to read, never a new one
        raise BacktestError(
            f"no trial ledger at {TrialLedger(ledger).path}", "name an existing ledger file, or leave --ledger out"
        )
    book = open_trial_ledger(ledger)
    console.print(f"trial ledger: {book.path}", soft_wrap=True, highlight=False)
    if data is None:
        table = ledger_summary(book)
        columns = [  # what decides (N, best DSR, SPA p, PBO) stays longest at a narrow terminal
            ("data fingerprint", "left", IDENTITY),
            ("source", "left", 7),
            ("N", "right", 9),
            ("V", "right", 6),
            ("best DSR", "right", 9),
            ("best Sharpe", "right", 5),
            ("SPA p", "right", 8),
            ("SPA p cash", "right", 4),
            ("PBO", "right", 8),
            ("PBO tuning", "right", 3),
            ("rows", "right", 2),
            ("last", "right", 2),
        ]
        rows = [
            [
                r.data,
                short_source(r.source) if not wide else r.source,
                str(r.n),
                _fmt(r.variance, 3),
                _pct(r.best_dsr, ".0%"),
                _pct(r.best_sharpe, ".2f"),
                _pct(r.spa_benchmark_pvalue, ".2f"),
                _pct(r.spa_cash_pvalue, ".2f"),
                _pct(r.pbo_test, ".2f"),
                _pct(r.pbo_validation, ".2f"),
                str(r.rows),
                r.last[:10],
            ]
            for r in table.itertuples()
        ]
        title = "Data sets and the configurations tried on them"
        caption = (
            "N: distinct configurations; V: variance of their per-day out-of-sample Sharpes; best DSR: the best "
            "configuration's deflated Sharpe by N and V; best Sharpe: annualised; SPA p: Hansen's test "
            "that the best out-of-sample configuration beats the benchmark (cash), small: it does; PBO: probability "
            "of backtest overfitting over the out-of-sample runs (the tuning trials), about 0.5 for noise"
        )
    else:
        table = ledger_configurations(book, data)
        columns = [
            ("kind", "left", IDENTITY),
            ("when", "left", 6),
            ("span", "left", 5),
            ("Sharpe", "right", 8),
            ("key", "left", 3),
            ("settings", "left", 2),
        ]
        rows = [
            [r.kind, r.time[:16], r.span, _pct(r.sharpe_annual, ".2f"), r.key, r.params[:60]]
            for r in table.itertuples()
        ]
        title, caption = f"Configurations tried on {table['data'].iloc[0]}", "Sharpe: annualised, of the LSTM strategy"
    show(fitted_table(title, columns, rows, wide, caption))
    if csv is not None:
        write_csv(csv, table)
        console.print(f"saved {csv}", soft_wrap=True)

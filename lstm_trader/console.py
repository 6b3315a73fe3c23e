"""What every `lstm-trader` command shares: the consoles, the error wrapper, progress bars and common options."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from forecasting.errors import ForecastingError, did_you_mean
from forecasting.progress import Progress as WalkForwardProgress
from reports.errors import ReportError
from strategies.errors import StrategyError

USER_ERRORS = (ForecastingError, StrategyError, ReportError)

HELP = {"help_option_names": ["-h", "--help"]}

# Rich falls back to 80 columns when piped; tables of metrics need more.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 130)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ConfigArg = Annotated[Path | None, typer.Argument(help="TOML experiment; default: configs/default.toml")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        help="serial, local (a process pool; the default) or ray: where "
        "tickers (and tuning workers) run; sets execution.executor"
    ),
]
WorkersOpt = Annotated[int | None, typer.Option(help="parallel workers (execution.workers); default: one per core")]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        help="an existing Ray cluster: auto, host:6379 or ray://host:10001 "
        "(execution.ray_address); implies --executor ray"
    ),
]


_METAVARS = {
    "str": "TEXT",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "FLOAT",
    "path": "PATH",
    "Path": "PATH",
    "%Y-%m-%d": "DATE",
}


def plain_metavars(command) -> None:
    """Help without Typer's `<bool>`/`<list[str]>` type artefacts: a flag shows no type, a value an
    upper-case name as Click writes them (PATH, INTEGER, TEXT, DATE)."""
    help_option = command.get_help_option

    def get_help_option(ctx):
        option = help_option(ctx)
        if option is not None:
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = get_help_option
    if command.help:
        command.help = unwrap(command.help)
    if getattr(command, "short_help", None):
        command.short_help = unwrap(command.short_help)
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "argument":  # RUN_DIR and [CONFIG], not {run_dir}
            many = "..." if param.nargs != 1 else ""
            param.metavar = param.name.upper() + many
            param._usage_display_name = lambda p=param: p.metavar if p.required else f"[{p.metavar}]"
        if getattr(param, "is_flag", False) or not hasattr(param, "display_type"):
            label = None
        else:
            raw = param.display_type(None).strip("<>")
            label = _METAVARS.get(raw.removeprefix("list[").removesuffix("]"), "VALUE")
        param.display_type_rich = lambda ctx, label=label: label
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def unwrap(text: str) -> str:
    """A docstring's paragraphs as single lines, so the help wraps them at the terminal's width
    instead of breaking where the source did."""
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def execution_sets(executor: str | None, workers: int | None, ray_address: str | None) -> list[str]:
    """The execution flags as `--set` overrides (checked here first, so an error names the flag)."""
    from backtests.errors import ConfigError
    from backtests.execution import EXECUTORS

    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(
            f"unknown --executor '{executor}'", did_you_mean(executor, EXECUTORS, "use serial, local or ray")
        )
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})", "e.g. --workers 2 on two cores")
    sets = []
    if ray_address is not None:
        sets.append(f'execution.ray_address="{ray_address}"')
        executor = executor or "ray"
    if executor is not None:
        sets.append(f'execution.executor="{executor}"')
    if workers is not None:
        sets.append(f"execution.workers={workers}")
    return sets


SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override a key: section.key=value (repeatable)")]

_interrupt_hint: dict = {}


def user_errors(command):
    """Print user errors (bad data, config, strategy, run dir) as one line with a hint; exit 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            line = f"error: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
            errors.print(line, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            run_dir = _interrupt_hint.pop("run", None)
            hint = f"; finish it with: lstm-trader run --resume {run_dir}" if run_dir else ""
            errors.print(f"interrupted: what was finished is saved{hint}", markup=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not _force_progress(),
    )


def _force_progress() -> bool:
    import os

    return os.environ.get("LSTM_TRADER_PROGRESS") == "1"


LedgerOpt = Annotated[
    Path | None,
    typer.Option(
        help="the trial ledger to count and record configurations in (SQLite file); default "
        "$LSTM_TRADER_HOME/ledger.sqlite, else the user's data directory"
    ),
]


def ledger_sets(ledger: Path | None) -> list[str]:
    """--ledger as the config override it stands for."""
    if ledger is None:
        return []
    return ["ledger=" + '"' + str(ledger).replace("\\", "\\\\").replace('"', '\\"') + '"']


WideOpt = Annotated[bool, typer.Option("--wide", help="every column of the tables, however wide the terminal")]


IDENTITY = 10  # the priority of columns that say what a row is (run, ticker, strategy): never left out


def fitted_table(
    title: str,
    columns: list[tuple[str, str, int]],
    rows: list[list[str]],
    wide: bool = False,
    caption: str | None = None,
):
    """A rich table that fits the console: columns are (header, justify, priority); while the table is
    wider than the console, the column of lowest priority below IDENTITY goes (named in the caption), so no cell is
    ever cut to '…'. `wide` keeps them all (the CSV files always have every column, at full precision)."""
    from rich.table import Table

    def natural(indices: list[int]) -> int:
        return 1 + sum(3 + max([len(columns[i][0])] + [len(row[i]) for row in rows]) for i in indices)

    shown = list(range(len(columns)))
    dropped: list[str] = []
    while not wide and natural(shown) > console.width:
        droppable = [i for i in shown if columns[i][2] < IDENTITY]
        if not droppable:
            break
        weakest = min(droppable, key=lambda i: (columns[i][2], -i))
        shown.remove(weakest)
        dropped.append(columns[weakest][0])
    notes = [caption] if caption else []
    if dropped:
        notes.append(f"not shown at {console.width} columns: {', '.join(dropped)} (--wide shows them)")
    table = Table(title=title)
    for i in shown:
        table.add_column(columns[i][0], justify=columns[i][1], no_wrap=True)
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return FittedTable(table, notes, natural(shown))


class FittedTable:
    """A table and its legend, the legend printed under it as text that wraps at the console's width (a
    rich caption would wrap at the table's)."""

    def __init__(self, table, notes: list[str], natural_width: int) -> None:
        self.table, self.notes, self.natural_width = table, notes, natural_width

    def __rich_console__(self, console, options):
        from rich.text import Text

        yield self.table
        for note in self.notes:
            yield Text(note)


def show(table) -> None:
    """Print a table at its own width when that is wider than the console (--wide), else at the console's."""
    width = getattr(table, "natural_width", 0)
    if width <= console.width:
        console.print(table)
        return
    saved = console.width
    console.width = width  # Rich clamps any per-call width to the console's
    try:
        console.print(table)
    finally:
        console.width = saved


class RichProgress(WalkForwardProgress):
    """Two bars: folds of the current ticker and epochs of the current fit."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.folds = progress.add_task("folds", total=None)
        self.epochs = progress.add_task("epochs", total=None)

    def stage(self, text: str) -> None:
        self.progress.update(self.folds, description=text)

    def fold(self, ticker: str, done: int, total: int) -> None:
        self.progress.update(self.folds, completed=done, total=total, description=f"{ticker} folds")

    def epoch(self, done: int, total: int, logs: dict | None = None) -> None:
        self.progress.update(self.epochs, completed=done, total=total, description="epochs")

    def tasks(self, done: int, total: int) -> None:  # parallel tickers: one bar over all of them
        self.progress.update(self.folds, completed=done, total=total, description="tickers")
        self.progress.update(self.epochs, visible=False)


def connect(cfg, workers: int | None = None) -> None:
    """With the ray executor, reach the cluster (or start the local instance) before any output is written."""
    if cfg.execution.executor == "ray":
        from backtests.execution import start_ray

        start_ray(cfg.execution, workers)


def toml_quote(value: str) -> str:
    """A TOML string of `value` (for a `--set` built from an option)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

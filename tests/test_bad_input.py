"""The bad-input corpus: every command, fed something wrong, prints exactly one `error:` line naming the
problem (plus a hint), exits 2, shows no traceback, and creates or changes no file outside what it owns.

Each case runs the console entry point (`lstm_trader.cli.main`, so usage errors are covered too) in a
fresh folder holding the fixtures below, and compares that folder's files before and after.
"""

import contextlib
import json
from pathlib import Path

import pandas as pd
import pytest

from backtests.config import dump_config, load_config
from lstm_trader.cli import main
from tests.helpers import TINY, make_bars, write_yahoo_csv

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
CROSS = str(Path(__file__).resolve().parent.parent / "configs" / "cross_section.toml")
VOLATILITY = str(Path(__file__).resolve().parent.parent / "configs" / "volatility.toml")
SIZED = '{name="lstm_signal", params={target_vol=0.1, vol_forecast="vol_lstm"}}'
ROW = "{d},10,12,9,{c},{c},100\n"


def csv_text(closes, dates=None) -> str:
    dates = dates or [f"2020-01-{i + 1:02d}" for i in range(len(closes))]
    return HEADER + "".join(ROW.format(d=d, c=c) for d, c in zip(dates, closes))


def fixtures(root):
    """Files the cases point at; made before the snapshot, so only what a command adds or changes shows."""
    files = {
        "good.csv": None,
        "nan.csv": csv_text([10, 11, "", 10.5]),
        "text.csv": csv_text([10, 11, "abc", 10.5]),
        "inf.csv": csv_text([10, 11, "inf", 10.5]),
        "unsorted.csv": csv_text([10, 11, 10.5], ["2020-01-02", "2020-01-01", "2020-01-03"]),
        "dup.csv": csv_text([10, 11, 10.5], ["2020-01-01", "2020-01-02", "2020-01-02"]),
        "baddate.csv": csv_text([10, 11], ["2020-01-01", "yesterday"]),
        "negative.csv": csv_text([10, -11, 10.5]).replace(",10,12,9,-11", ",-10,12,-9,-11"),
        "lowhigh.csv": HEADER + "2020-01-01,10,12,9,13,13,100\n",
        "noclose.csv": "Date,Open,High,Low,Volume\n2020-01-01,10,12,9,100\n",
        "empty.csv": "",
        "short.csv": csv_text([10 + i * 0.1 for i in range(20)]),
        "bad.toml": 'name = "x\n',
        "latin1.toml": b'name = "caf\xe9"\n',
        "unknown.toml": "[model]\nunits = 8\nepoch = 3\n",
        "preds_text.csv": "date,ticker,model,y_pred\n2015-06-01,good,lstm,abc\n",
        "preds_date.csv": "date,ticker,model,y_pred\nnot-a-day,good,lstm,0.1\n",
        "preds_nocol.csv": "date,ticker,model\n2015-06-01,good,lstm\n",
        "preds_other.csv": "date,ticker,model,y_pred\n2015-06-01,ZZZ,lstm,0.1\n",
        "afile": "",
        "returns.toml": "[model]\nunits = 8\n",
        "notdb.sqlite": "this is a text file, not a database\n" * 40,
        "divtext.csv": "Date,Open,High,Low,Close,Volume,Dividends\n2020-01-01,10,12,9,11,100,\n"
        "2020-01-02,10,12,9,11,100,soon\n",
    }
    for name, text in files.items():
        path = root / name
        if name == "good.csv":
            write_yahoo_csv(make_bars(320, seed=9), path)
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    (root / "folder.csv").mkdir()
    (root / "disjoint").mkdir()  # three close-only files whose years never meet
    for number, year in enumerate((2010, 2013, 2016)):
        days = pd.bdate_range(f"{year}-01-01", periods=300)
        closes = 100 + (pd.Series(range(300)) % 7).to_numpy()
        pd.DataFrame({"Date": days.date, "Close": closes}).to_csv(root / "disjoint" / f"T{number}.csv", index=False)
    config = dump_config(load_config(None, ['data.source="csv:good.csv"']))
    for name, comparison in (("emptyrun", ""), ("norows", "strategy,ticker,sharpe\n")):
        run = root / name
        run.mkdir()
        (run / "config.toml").write_text(config)
        (run / "metrics.json").write_text(json.dumps({"forecast": []}))
        (run / "comparison.csv").write_text(comparison)
    damaged = root / "damaged"
    (damaged / "checkpoints" / "good").mkdir(parents=True)
    (damaged / "config.toml").write_text(
        dump_config(load_config(None, ['data.source="csv:good.csv"'] + [TINY[i + 1] for i in range(0, len(TINY), 2)]))
    )
    (damaged / "checkpoints" / "good" / "state.json").write_text("{not json")
    (root / "nometrics").mkdir()
    from trading.account import init_account

    for name in ("acct", "broken"):  # paper accounts on good.csv (2015-01-01 to 2016-03-23)
        with contextlib.chdir(root):  # where the csv path is read from, as at each step
            init_account(
                None,
                ['data.source="csv:good.csv"'] + [TINY[i + 1] for i in range(0, len(TINY), 2)],
                name,
                "local",
                "paper",
            )
    (root / "paper" / "broken" / "ledger.sqlite").write_bytes(b"not a database" * 100)


def snapshot(root) -> dict:
    # every file, lock files too: a refused command leaves no `.lock` behind
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def src(name):
    return ["--set", f'data.source="csv:{name}"']


CASES = [
    # data
    (["run", *src("missing.csv")], "csv file not found: missing.csv"),
    (["run", *src("folder.csv")], "folder.csv is a folder, not a csv file"),
    (["run", *src("noclose.csv")], "missing column 'close'"),
    (["run", *src("nan.csv")], "row 4 (2020-01-03), column 'close': missing value (NaN)"),
    (["run", *src("text.csv")], "row 4 (2020-01-03), column 'close': not a number ('abc')"),
    (["run", *src("inf.csv")], "row 4 (2020-01-03), column 'close': infinite value"),
    (["run", *src("unsorted.csv")], "column 'date': dates are not sorted"),
    (["run", *src("dup.csv")], "column 'date': duplicate date"),
    (["run", *src("baddate.csv")], "row 3, column 'Date': cannot parse date 'yesterday'"),
    (["run", *src("negative.csv")], "must be positive"),
    (["run", *src("lowhigh.csv")], "column 'high': high is below max(open, close)"),
    (["run", *src("empty.csv")], "empty.csv: not a readable CSV"),
    (["run", *src("short.csv")], "usable rows, but"),
    (["run", "--set", 'data.source="ftp:x"'], "unknown data scheme 'ftp'"),
    (["run", "--set", 'data.source="builtin:dax"'], "unknown embedded data set 'builtin:dax'"),
    (
        ["run", "--set", 'data.source="yahoo:ZZZZ"', "--set", 'data.cache_dir="cache"'],
        "yahoo:ZZZZ: could not download from Yahoo Finance and nothing is cached",
    ),
    (["run", *src("nodir/*.csv")], "no files match 'nodir/*.csv'"),
    (
        ["run", "--set", 'data.source="yahoo:@missing.txt"', "--set", 'data.cache_dir="cache"'],
        "ticker list not found: missing.txt",
    ),
    # a universe model and its portfolios
    (
        ["run", "--set", 'model.scope="global"'],
        "a global model ranks a universe: it needs at least 3 tickers with",
    ),
    (
        ["run", *src("disjoint/*.csv"), "--set", 'model.scope="global"', "--set", 'model.features=["log_return"]'],
        "no date has 3 of the universe's tickers: their dates do not overlap",
    ),
    (
        ["run", "--set", 'data.source="builtin:sp500_stocks"'],
        "feature 'atr_14' needs high and low prices, but builtin:sp500_stocks (AAPL) is close-only",
    ),
    (
        ["run", CROSS, "--set", 'strategies=[{name="xs_rank", params={k=30}}]'],
        "xs_rank: k = 30 but the universe has 20 tickers",
    ),
    (
        ["run", CROSS, "--set", 'strategies=[{name="xs_rank", params={k=11, allow_short=true}}]'],
        "k = 11 long and 11 short need 22 tickers; the universe has 20",
    ),
    (
        ["run", "--set", 'strategies=[{name="xs_rank", params={weighting="inverse_vl"}}]'],
        "did you mean 'inverse_vol'?",
    ),
    (["run", "--set", 'model.target="xs_rank"'], "target 'xs_rank' ranks tickers against each other"),
    # network heads and refits
    (["run", "--set", 'model.head="resdual"'], "config key 'model.head': Input should be 'lstm' or 'residual'"),
    (["run", "--set", "walk_forward.refit_every=0"], "config key 'walk_forward.refit_every'"),
    (["run", "--set", "walk_forward.refit_every=-2"], "greater than or equal to 1"),
    (["run", "--set", "model.epochs=0"], 'epochs = 0 trains nothing: only head = "residual"'),
    (["run", "--set", 'strategies=[{name="xs_rank"}]'], "xs_rank: k = 5 but the universe has 1 ticker (hint: xs_rank"),
    (["run", "--set", 'tune.objective="rank_ic"'], "tune.objective = rank_ic ranks a universe"),
    # volatility forecasts
    (
        [
            "run",
            "--set",
            'data.source="builtin:sp500_stocks"',
            "--set",
            'model.features=["log_return"]',
            "--set",
            'model.target="realized_vol"',
            "--set",
            'model.vol_estimator="garman_klass"',
        ],
        "the garman-klass estimator needs open, high and low prices, but builtin:sp500_stocks (AAPL) is close-only",
    ),
    (
        ["run", "--set", 'model.target="realized_vol"', "--set", "walk_forward.min_train=100"],
        "GARCH needs at least 250 training returns; the first fold of sp500 has 162 (hint: raise walk_forward.min_train to at least 188)",
    ),
    (
        ["run", "--set", 'model.target="realized_vol"', "--set", 'model.scope="global"'],
        "target 'realized_vol' is forecast per ticker",
    ),
    (["run", "--set", 'strategies=[{name="vol_target", params={target_vol=0}}]'], "'target_vol' must be between"),
    (
        ["run", "--set", 'model.target="realized_vol"'],
        "strategy 'lstm_signal' trades a return forecast, but this run forecasts variance",
    ),
    (
        ["run", "--set", 'strategies=[{name="vol_target"}]'],
        "strategy 'vol_target' sizes by a variance forecast, but this run forecasts returns",
    ),
    (
        ["run", CROSS, "--set", 'strategies=[{name="xs_rank", params={forecast="lgbm"}}]'],
        "trades the 'lgbm' forecast, which this run does not make (hint: did you mean 'lightgbm'?)",
    ),
    (["run", *src("divtext.csv"), "--set", "data.dividends=true"], "column 'dividends': not a number ('soon')"),
    (["run", "--set", "data.dividends=true"], "builtin:sp500 has no dividends"),
    # the trial ledger
    (["run", "--ledger", "notdb.sqlite"], "cannot open the trial ledger notdb.sqlite (file is not a database)"),
    (["run", "--ledger", "afile/ledger.sqlite"], "cannot open the trial ledger afile/ledger.sqlite"),
    (["tune", "--ledger", "afile/ledger.sqlite"], "cannot open the trial ledger afile/ledger.sqlite"),
    (["run", "--ledger", "afile/x/ledger.sqlite"], "afile/x/ledger.sqlite: afile is a file, not a folder"),
    (["ledger", "--ledger", "notdb.sqlite"], "file is not a database"),
    # config
    (["run", "missing.toml"], "config file not found: missing.toml"),
    (["run", "folder.csv"], "folder.csv is a folder, not a config file"),
    (["run", "bad.toml"], "bad.toml: invalid TOML"),
    (["run", "latin1.toml"], "latin1.toml: not UTF-8 text"),
    (["run", "unknown.toml"], "unknown config key 'model.epoch' (hint: did you mean 'model.epochs'?)"),
    (["run", "--set", "model.units=-3"], "--set model.units=-3: config key 'model.units'"),
    (["run", "--set", "model.units"], "--set 'model.units' is not of the form section.key=value"),
    (["run", "--set", 'model.shrink="yes"'], "config key 'model.shrink': Input should be a valid boolean (got 'yes')"),
    (
        ["run", "--set", "broker.fractional=1"],
        "config key 'broker.fractional': Input should be a valid boolean (got 1)",
    ),
    (
        ["run", "--set", 'model.features=["sma_20", "rsx_14"]'],
        "unknown feature 'rsx_14' (hint: did you mean 'rsi_14'?)",
    ),
    (["run", "--set", 'strategies=[{name="lstm_sgnal"}]'], "unknown strategy 'lstm_sgnal'"),
    (["run", "--set", 'strategies=[{name="lstm_signal", params={enter_lng=0.1}}]'], "has no parameter 'enter_lng'"),
    (["run", "--set", 'strategies=[{name="sma_cross", params={fast=-5}}]'], "'fast' must be at least 1"),
    (["run", "--set", 'strategies=[{name="sma_cross", params={fast=300}}]'], "'fast' (300) must be below 'slow' (200)"),
    (["run", "--set", 'strategies=[{name="rsi_reversion", params={period=2.5}}]'], "'period' must be a whole number"),
    (["run", "--set", 'strategies=[{name="lstm_signal", params={stop_loss="big"}}]'], "'stop_loss' must be a number"),
    # usage (Typer/Click's own errors, as one line too)
    (["run", "--epochs", "3"], "No such option: --epochs"),
    (["forecast", "--days", "0"], "Invalid value for '--days'"),
    (["data", "fetch"], "Missing argument"),
    (["nosuch"], "No such command 'nosuch'"),
    # run dirs and resume
    (["run", "--runs-dir", "afile"], "--runs-dir afile is a file"),
    (["run", "--runs-dir", "afile/runs"], "--runs-dir afile/runs lies under afile, which is a file"),
    (["run", "--resume", "nowhere"], "nowhere"),
    (["run", "good.toml", "--resume", "emptyrun"], "--resume takes the run dir's own config.toml"),
    (["run", "--resume", "damaged"], "the checkpoints in damaged/checkpoints/good are damaged"),
    # backtest
    (["backtest", "missing.parquet", *src("good.csv")], "predictions file not found: missing.parquet"),
    (["backtest", "preds_text.csv", *src("good.csv")], "row 1, column 'y_pred': 'abc' is not a number"),
    (["backtest", "preds_date.csv", *src("good.csv")], "row 1, column 'date': 'not-a-day' is not a date"),
    (["backtest", "preds_nocol.csv", *src("good.csv")], "missing column 'y_pred'"),
    (["backtest", "preds_other.csv", *src("good.csv")], "predictions are for 'ZZZ'"),
    (["backtest", "preds_text.csv", *src("good.csv"), "--runs-dir", "afile"], "--runs-dir afile is a file"),
    # compare and report
    (["compare", "nowhere"], "run dir not found: nowhere"),
    (["compare", "emptyrun"], "emptyrun/comparison.csv has no strategy rows"),
    (["compare", "norows"], "norows/comparison.csv has no strategy rows"),
    (["compare", "norows", "--out", "nofolder/x.csv"], "the folder nofolder does not exist"),
    (["report", "emptyrun"], "emptyrun/comparison.csv is empty or not a CSV table"),
    (["report", "norows"], "norows/comparison.csv has no rows"),
    (["report", "nometrics"], "nometrics has no metrics.json"),
    # audit and forecast
    (["audit", *TINY, *src("good.csv"), "--date", "notadate"], "--date 'notadate' is not a date"),
    (
        ["audit", *TINY, *src("good.csv"), "--date", "2001-01-01"],
        "audit date 2001-01-01 is outside the out-of-sample span",
    ),
    (["forecast", "--data", "csv:good.csv", "--out", "afile/fc"], "--out afile/fc lies under afile, which is a file"),
    (["forecast", "--data", "csv:short.csv", *TINY], "are too few to train a 10-day forecast"),
    (["forecast", "--data", "csv:good.csv", *TINY, "--days", "260"], "are too few to train a 260-day forecast"),
    (["forecast", "--data", "csv:good.csv", "--as-of", "notadate"], "--as-of 'notadate' is not a date"),
    (["forecast", "--data", "csv:good.csv", "--as-of", "1990-01-01"], "--as-of 1990-01-01 is before good's first bar"),
    (["forecast", "--data", "csv:good.csv", "--as-of", "2030-01-01"], "--as-of 2030-01-01 is after good's last bar"),
    # executors
    (["run", "--workers", "0"], "--workers must be at least 1 (got 0)"),
    (["run", "--executor", "rey"], "unknown --executor 'rey' (hint: did you mean 'ray'?)"),
    (
        ["run", "--set", 'execution.executor="rey"'],
        "config key 'execution.executor': Input should be 'serial', 'local'",
    ),
    (["run", "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["audit", "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["tune", "--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    # tune and paper
    (["tune", "--jobs", "0"], "--jobs must be at least 1"),
    (["tune", "--studies-dir", "afile"], "--studies-dir afile is a file"),
    (["paper", "step", "ghost"], "unknown paper account 'ghost'"),
    (["paper", "init", "--broker", "ib"], "unknown broker 'ib'"),
    (["paper", "init", "--name", "a/b"], "account name 'a/b' may hold only"),
    (["paper", "init", "--paper-dir", "afile"], "--paper-dir afile is a file"),
    # what an account trades: a forecast of the kind its rule reads, and the variance forecast it sizes by
    (
        ["paper", "init", "--set", 'strategies=[{name="vol_target"}]', "--set", 'paper.strategy="vol_target"'],
        "paper.strategy 'vol_target' trades a variance forecast, but the model forecasts return",
    ),
    (
        ["paper", "init", "--set", f"strategies=[{SIZED}]"],
        "sizes by a volatility forecast, which this account does not",
    ),
    (
        ["paper", "init", "--set", f"strategies=[{SIZED}]", "--volatility", "nowhere.toml"],
        "--volatility nowhere.toml: no such config file",
    ),
    (
        ["paper", "init", "--set", f"strategies=[{SIZED}]", "--volatility", VOLATILITY]
        + ["--volatility-set", 'data.start="2015-01-01"'],
        '--volatility-set data.start="2015-01-01": the volatility network trains on the account\'s own data',
    ),
    (
        ["paper", "init", "--set", 'strategies=[{name="lstm_signal", params={vol_forecast="vol_lstm"}}]']
        + ["--volatility", VOLATILITY],
        "names vol_forecast but no target_vol",
    ),
    (["run", VOLATILITY, "--set", "walk_forward.min_train=100000"], "usable rows, but"),
    (["paper", "init", "--volatility", VOLATILITY], "does not size by a volatility forecast, so --volatility has"),
    (
        ["paper", "init", "--set", f"strategies=[{SIZED}]", "--volatility", "unknown.toml"],
        "unknown config key 'model.epoch'",
    ),
    (["paper", "init", "--set", f"strategies=[{SIZED}]", "--volatility", "returns.toml"], "forecasts returns, not"),
    (
        [
            "paper",
            "init",
            "--set",
            f"strategies=[{SIZED.replace('vol_lstm', 'vol_garch')}]",
            "--volatility",
            VOLATILITY,
        ],
        "sizes by the 'vol_garch' forecast; a paper account serves one volatility network, 'vol_lstm'",
    ),
    (["paper", "init", "--volatility-set", "model.units=3"], "--volatility-set without --volatility"),
    (["paper", "step", "acct", "--date", "2010-01-04"], "the data starts on 2015-01-01, after 2010-01-04"),
    (["paper", "step", "acct", "--date", "2030-01-02"], "the data ends on 2016-03-23, before 2030-01-02"),
    (["paper", "step", "broken"], "paper/broken/ledger.sqlite is not a readable paper ledger"),
    (["paper", "status", "broken"], "paper/broken/ledger.sqlite is not a readable paper ledger"),
    (["paper", "replay", "broken", "--from", "2016-01-04", "--to", "2016-01-08"], "is not a readable paper ledger"),
    (["paper", "replay", "acct", "--from", "2016-02-01", "--to", "2016-01-04"], "--to 2016-01-04 is before --from"),
    (["paper", "replay", "acct", "--from", "2030-01-02", "--to", "2030-01-09"], "the data ends on 2016-03-23"),
    # the trial ledger's own command reads a ledger; it never makes one
    (["ledger", "--ledger", "nowhere.sqlite"], "no trial ledger at nowhere.sqlite"),
    (["ledger", "--ledger", "disjoint"], "no trial ledger at disjoint/ledger.sqlite"),
    (["ledger", "--csv", "nodir/rows.csv"], "--csv nodir/rows.csv: the folder nodir does not exist"),
    (["ledger", "--csv", "afile/rows.csv"], "--csv afile/rows.csv: afile is a file, not a folder"),
    (["ledger", "--csv", "folder.csv"], "--csv folder.csv is a folder"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_error_line_exit_2_and_touches_nothing(tmp_path, monkeypatch, capsys, args, message):
    import forecasting.data as data_module

    fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_module, "yahoo_download", lambda ticker: pd.DataFrame())  # offline
    before = snapshot(tmp_path)
    code = main(args)
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert code == 2, out + err
    assert "Traceback" not in out + err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], out + err
    assert lines[-1] == errors[0]  # the error line is the last thing printed
    assert snapshot(tmp_path) == before, "the command created or changed files"


def test_the_corpus_is_large_and_covers_every_command():
    commands = {args[0] for args, _ in CASES}
    assert len(CASES) >= 40
    assert commands >= {"run", "backtest", "compare", "report", "audit", "forecast", "tune", "paper", "data"}

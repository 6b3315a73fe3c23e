"""The experiment config: TOML -> `--set` overrides -> pydantic validation, with 'did you mean' errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, Field, StrictBool, ValidationError, field_validator, model_serializer, model_validator

from backtests.engine import BrokerSpec
from backtests.errors import ConfigError
from backtests.execution import ExecutionSpec
from forecasting.errors import did_you_mean
from forecasting.spec import DataSpec, ModelSpec, Strict, WalkForwardSpec
from forecasting.tasks import task_of
from strategies import resolve

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"


class StrategySpec(Strict):
    name: str = Field(
        description="lstm_signal | ridge_signal | naive_signal | buy_and_hold | sma_cross | rsi_reversion | "
        "macd_cross | vol_target | xs_rank | equal_weight"
    )
    label: str | None = Field(None, description="how it is called in tables; default: the name")
    params: dict[str, Any] = Field(default_factory=dict, description="strategy parameters")

    @model_validator(mode="after")
    def _known_strategy(self) -> StrategySpec:
        resolve(self.name, self.params)  # raises StrategyError with a suggestion
        return self

    @property
    def title(self) -> str:
        return self.label or self.name


TUNABLE = {  # search-space name -> (config section, default range)
    "n_layers": ("model", {"low": 1, "high": 3}),
    "units": ("model", {"low": 16, "high": 128, "log": True}),
    "dropout": ("model", {"low": 0.0, "high": 0.5}),
    "learning_rate": ("model", {"low": 1e-4, "high": 1e-2, "log": True}),
    "lookback": ("model", {"low": 10, "high": 60}),
    "epochs": ("model", {"low": 5, "high": 40}),
    "batch_size": ("model", {"choices": [32, 64, 128]}),
    "finetune_epochs": ("walk_forward", {"low": 0, "high": 5}),
    "patience": ("model", None),
    "val_fraction": ("model", None),
    "finetune_window": ("walk_forward", None),
    "finetune_learning_rate": ("walk_forward", None),
}


class SearchRange(Strict):
    """One tuned parameter: a range `low`..`high` (integers stay integers; `log` samples on a log
    scale) or a list of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: StrictBool = False
    choices: list[float | int | str] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchRange:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either a non-empty list of choices or low and high")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (or choices)")
        if not self.low < self.high:
            raise ValueError(f"empty or inverted search range: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)


def default_space() -> dict[str, SearchRange]:
    return {name: SearchRange(**default) for name, (_, default) in TUNABLE.items() if default is not None}


class TuneSpec(Strict):
    space: dict[str, SearchRange] = Field(
        default_factory=default_space, description="tuned parameters; names: " + ", ".join(TUNABLE)
    )
    trials: int = Field(30, ge=1, description="trials of a study (--trials overrides)")
    inner_train_fraction: float = Field(
        0.6,
        gt=0.0,
        lt=1.0,
        description="share of the tuning span that trains the "
        "inner walk-forward's first fold; the rest is its validation span",
    )
    pruner: Literal["median", "none"] = Field("median", description="Optuna pruner over the inner folds")
    objective: Literal["mse_ratio", "rank_ic"] = Field(
        "mse_ratio",
        description="mse_ratio: minimise the LSTM's validation MSE over the zero forecast's; rank_ic: maximise "
        "its mean daily rank IC across the universe (a global model's)",
    )

    @model_serializer(mode="wrap")
    def _without_default_objective(self, handler):
        """The objective came later: left out while at its default, so existing studies keep their identity."""
        data = handler(self)
        if data.get("objective") == "mse_ratio":
            data.pop("objective")
        return data

    @field_validator("space")
    @classmethod
    def _known_parameters(cls, space: dict[str, SearchRange]) -> dict[str, SearchRange]:
        for name in space:
            if name not in TUNABLE:
                raise ValueError(
                    f"unknown tuning parameter '{name}'; " + did_you_mean(name, TUNABLE, "known: " + ", ".join(TUNABLE))
                )
        if not space:
            raise ValueError("the search space is empty")
        return space

    @property
    def maximise(self) -> bool:
        return self.objective == "rank_ic"

    @property
    def objective_label(self) -> str:
        return "validation mean rank IC" if self.objective == "rank_ic" else "validation MSE / naive MSE"


def default_strategies() -> list[StrategySpec]:
    return [
        StrategySpec(name=n)
        for n in (
            "lstm_signal",
            "ridge_signal",
            "naive_signal",
            "sma_cross",
            "rsi_reversion",
            "macd_cross",
            "buy_and_hold",
        )
    ]


class PaperSpec(Strict):
    """`lstm-trader paper`: which strategy a paper account trades, on which calendar and symbols."""

    strategy: str = Field(
        "lstm_signal",
        description="the [[strategies]] entry (label or name) the account trades; it must trade the LSTM's forecast",
    )
    calendar: str = Field("XNYS", description="exchange calendar (exchange-calendars code) of the trading days")
    symbols: dict[str, str] = Field(
        default_factory=dict,
        description='data ticker -> broker symbol, e.g. { sp500 = "SPY" }; the embedded sets default to SPY and QQQ',
    )


class ServeSpec(Strict):
    """`lstm-trader serve`: when it steps the account, and when it raises an alert. These keys of an
    account's config.toml may be edited after `paper init` (the model's settings may not); serve reads
    them when it starts."""

    after_close: float = Field(
        30, ge=0, description="minutes after the session's close before the data refresh and the step"
    )
    data_grace: float = Field(
        120, ge=0, description="minutes after that: no new bar by then raises a 'no_data' alert (retries go on)"
    )
    retries: int = Field(5, ge=0, description="retries of a failed refresh or step, with doubling waits")
    retry_backoff: float = Field(60, gt=0, description="seconds before the first retry (then 2x, 4x, ...)")
    max_model_age: int | None = Field(
        None, ge=1, description="sessions a model may serve before an alert; default walk_forward.retrain_every"
    )
    max_equity_gap: float = Field(
        0.01, ge=0, description="relative gap between the account's equity and the backtest replay that alerts"
    )
    max_target_mismatches: int = Field(0, ge=0, description="decisions unlike the backtest's tolerated before an alert")
    worker_nice: int = Field(
        10, ge=0, le=19, description="the step's CPU priority below the API's (os.nice), so reads stay fast"
    )
    webhook_url: str | None = Field(
        None, description="alerts are POSTed here as JSON (Slack- and Discord-compatible text); default: log only"
    )
    reference_run: str | None = Field(
        None, description="a run dir of the same recipe: its out-of-sample forecast quality sits beside the live one"
    )

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("serve.webhook_url must start with http:// or https://")
        return value


class ExperimentConfig(Strict):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9_.-]+$", description="run dir prefix")
    seed: int = Field(42, description="one seed for Python, NumPy and Keras")
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    walk_forward: WalkForwardSpec = Field(default_factory=WalkForwardSpec)
    broker: BrokerSpec = Field(default_factory=BrokerSpec)
    strategies: list[StrategySpec] = Field(
        default_factory=default_strategies,
        description="the strategies to backtest, one [[strategies]] table each (name, label, params; keys under "
        "strategies[] below); default: the LSTM's signal, its controls' signals and the classic rules",
    )
    tune: TuneSpec = Field(default_factory=TuneSpec)
    paper: PaperSpec = Field(default_factory=PaperSpec)
    serve: ServeSpec = Field(default_factory=ServeSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    ledger: str | None = Field(
        None,
        description="the trial ledger (SQLite file) every run, backtest and tuning trial is recorded in; default "
        "$LSTM_TRADER_HOME/ledger.sqlite, else the user's data directory (--ledger overrides)",
    )

    @model_validator(mode="after")
    def _rank_ic_needs_a_universe(self) -> ExperimentConfig:
        if self.tune.objective == "rank_ic" and not task_of(self.model).universe:
            raise ValueError("tune.objective = rank_ic ranks a universe; it needs model.scope = global")
        return self


def parse_value(text: str) -> Any:
    """A `--set` value as TOML (numbers, booleans, arrays, quoted strings); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set '{assignment}' is not of the form section.key=value", "e.g. --set model.units=64")
    set_value(raw, key, parse_value(value.strip()), f"--set '{assignment}'")


def set_value(raw: dict, key: str, value: Any, origin: str | None = None) -> None:
    """Set `section.key` in a raw config dict (sections created as needed), as `--set` does."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin or repr(key)}: '{part}' is a value, not a section", "e.g. --set model.units=64")
    node[parts[-1]] = value


def _check_keys(raw: dict, model: type[BaseModel], prefix: str = "") -> None:
    fields = model.model_fields
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in fields:
            names = [f"{prefix}{name}" for name in fields]
            hint = did_you_mean(path, names, "known keys here: " + ", ".join(names), cutoff=0.6)
            raise ConfigError(f"unknown config key '{path}'", hint)
        annotation = fields[key].annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _check_keys(value, annotation, f"{path}.")
        if key == "strategies" and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check_keys(item, StrategySpec, f"{path}[{i}].")


def validate_config(raw: dict, source: str = "config", overrides: list[str] | None = None) -> ExperimentConfig:
    """Check keys and values; an error names the `--set` that caused it, or else the file."""
    _check_keys(raw, ExperimentConfig)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        got = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
        message = error["msg"].removeprefix("Value error, ")
        origin, hint = source, "fix the value in the TOML file"
        for assignment in reversed(overrides or []):
            key = assignment.partition("=")[0].strip()
            if where == key or where.startswith(key + ".") or key.startswith(where + "."):
                origin, hint = f"--set {assignment}", "fix the value given with --set"
                break
        raise ConfigError(f"{origin}: config key '{where}': {message}{got}", hint) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a TOML experiment (the default one when `path` is None) and apply `--set` overrides."""
    return config_from(path, list(overrides or []))


def read_toml(path: Path) -> dict:
    """A config file's raw settings; a missing, foreign or broken file is one error with a hint."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file", "pass a TOML file, e.g. configs/default.toml")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "pass a TOML file, e.g. configs/default.toml")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})", "save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})", "check quotes and brackets on that line") from None


def config_from(
    source: str | Path | dict | ExperimentConfig | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> ExperimentConfig:
    """An experiment from a TOML path (None: the default), a dict of its sections or a config, with
    overrides as `{"model.epochs": 2}` or `["model.epochs=2"]` (the `--set` form): the Python API's door."""
    if isinstance(source, ExperimentConfig):
        if not overrides:
            return source
        raw, origin = source.model_dump(mode="json", exclude_none=True), "config"
    elif isinstance(source, dict):
        import copy

        raw, origin = copy.deepcopy(source), "config dict"
    else:
        path = Path(source) if source else DEFAULT_CONFIG
        raw, origin = read_toml(path), str(path)
    if isinstance(overrides, list | tuple):  # the --set form
        for assignment in overrides:
            apply_override(raw, assignment)
        return validate_config(raw, origin, list(overrides))
    for key, value in (overrides or {}).items():
        set_value(raw, key, value, f"override '{key}'")
    return validate_config(raw, origin, [f"{key}={value}" for key, value in (overrides or {}).items()])


def dump_config(config: ExperimentConfig) -> str:
    return tomli_w.dumps(config.model_dump(mode="json", exclude_none=True))


def flat_settings(config: ExperimentConfig) -> dict[str, Any]:
    """Every setting as `section.key` -> value (strategies as `strategies.<name>`), for diffs."""
    raw = config.model_dump(mode="json", exclude_none=True)
    flat: dict[str, Any] = {}
    for spec in raw.pop("strategies", []):
        label = spec.get("label") or spec["name"]
        flat[f"strategies.{label}"] = ", ".join(f"{k}={v}" for k, v in sorted(spec.get("params", {}).items())) or "-"

    space = raw.get("tune", {}).pop("space", None)
    if space is not None:  # one setting: `--set tune.space={...}` replaces the whole space, as TOML does
        flat["tune.space"] = (
            "; ".join(
                f"{name} "
                + (
                    f"{spec['choices']}"
                    if "choices" in spec
                    else f"{spec['low']}..{spec['high']}" + (" log" if spec.get("log") else "")
                )
                for name, spec in space.items()
            )
            or "-"
        )

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", raw)
    return flat


def config_differences(configs: list[ExperimentConfig]) -> dict[str, list[Any]]:
    """The settings whose values are not the same in every config: key -> one value per config
    (None where a config lacks the key)."""
    flats = [flat_settings(c) for c in configs]
    keys = sorted(set().union(*flats))
    return {k: [f.get(k) for f in flats] for k in keys if len({repr(f.get(k)) for f in flats}) > 1}

"""Completed walk-forward folds on disk, so an interrupted run resumes with an identical result.

After each fold the store writes that fold's predictions, then the network's state (weights,
optimizer variables and dropout random streams as one `.npz`) with the forecaster's scalers, then
a small state file naming the fold: a crash at any point leaves the last complete fold as the
place to resume from. Saving arrays instead of a full `.keras` archive keeps a checkpoint to a few
milliseconds.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.atomic import atomic_write
from forecasting.errors import ForecastingError
from forecasting.hashing import content_hash
from forecasting.model import LSTMForecaster, seed_generators


def fingerprint(frame: pd.DataFrame, settings: dict) -> str:
    """What a checkpoint depends on: the bars and the settings."""
    return content_hash(settings, [frame])


def network_state(forecaster: LSTMForecaster) -> dict[str, np.ndarray]:
    """Everything that makes the next training step of `forecaster` what it would be unbroken."""
    model = forecaster.model_
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)})
    arrays.update({f"s{i}": np.asarray(g.state.numpy()) for i, g in enumerate(seed_generators(model))})
    return arrays


def restore_network(forecaster: LSTMForecaster, arrays) -> None:
    """Rebuild `forecaster.model_` and load the arrays written by `network_state` into it."""
    model = forecaster.build_network()
    model.set_weights([arrays[f"w{i}"] for i in range(len(model.get_weights()))])
    model.optimizer.build(model.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
        variable.assign(arrays[f"o{i}"])
    for i, generator in enumerate(seed_generators(model)):
        generator.state.assign(arrays[f"s{i}"])
    forecaster.model_ = model


def save_ensemble(folder: Path, forecasters: list[LSTMForecaster]) -> None:
    """Each forecaster's network state (`network_{k}.npz`) and the rest of it (`forecaster_{k}.pkl`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, forecaster in enumerate(forecasters):
        atomic_write(folder / f"network_{k}.npz", lambda tmp: np.savez(tmp, **network_state(forecaster)))
        state = {name: v for name, v in forecaster.__dict__.items() if name != "model_"}
        shell = LSTMForecaster.__new__(LSTMForecaster)
        shell.__dict__.update(state)
        atomic_write(folder / f"forecaster_{k}.pkl", lambda tmp: tmp.write_bytes(pickle.dumps(shell)))


def load_ensemble(folder: Path, n: int) -> list[LSTMForecaster]:
    """The `n` forecasters `save_ensemble` wrote, ready to predict or train on."""
    forecasters = []
    for k in range(n):
        with open(folder / f"forecaster_{k}.pkl", "rb") as handle:
            forecaster = pickle.load(handle)
        with np.load(folder / f"network_{k}.npz") as arrays:
            restore_network(forecaster, arrays)
        forecasters.append(forecaster)
    return forecasters


class FoldCheckpoints:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, ticker: str) -> Path:
        return self.root / ticker

    def restore(self, ticker: str, key: str) -> tuple[list[pd.DataFrame], list[LSTMForecaster] | None, int]:
        """Tables of the completed folds, the forecasters (one per seed) after the last of them, and the next fold."""
        state_path = self._dir(ticker) / "state.json"
        if not state_path.is_file():
            return [], None, 0
        folder = self._dir(ticker)
        try:
            state = json.loads(state_path.read_text())
            if state.get("key") != key:
                raise ForecastingError(
                    f"checkpoints in {folder} were made from other data or settings",
                    "resume with the run dir's own config.toml, or start a new run",
                )
            last = int(state["fold"])
            tables = [pd.read_parquet(folder / f"fold_{fold:04d}.parquet") for fold in range(last + 1)]
            forecasters = load_ensemble(folder, int(state["models"])) if state.get("models") else None
        except ForecastingError:
            raise
        except Exception as exc:  # damaged by hand or by the disk (each file is written atomically by us)
            raise ForecastingError(
                f"the checkpoints in {folder} are damaged ({type(exc).__name__})",
                "delete that checkpoints folder to retrain from the start, or start a new run",
            ) from None
        return tables, forecasters, last + 1

    def save(
        self, ticker: str, key: str, fold: int, table: pd.DataFrame, forecasters: list[LSTMForecaster] | None
    ) -> None:
        folder = self._dir(ticker)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"fold_{fold:04d}.parquet", lambda tmp: table.to_parquet(tmp, index=False))
        save_ensemble(folder, forecasters or [])
        atomic_write(
            folder / "state.json",
            lambda tmp: tmp.write_text(json.dumps({"key": key, "fold": fold, "models": len(forecasters or [])})),
        )

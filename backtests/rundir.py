"""Run directories: a resolved config plus its artifacts, written atomically so nothing is left half-done."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtests.errors import BacktestError
from forecasting.atomic import atomic_write

if TYPE_CHECKING:  # pandas is imported by whoever passes a frame; light commands never load it
    import pandas as pd


def new_run_dir(root: str | Path, name: str, now: datetime | None = None) -> Path:
    """Create `root/<name>-<YYYYmmdd-HHMMSS>` (with a numeric suffix if that exists already)."""
    root = Path(root)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        path = root / (f"{name}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise BacktestError(f"could not create a run dir under {root}", "clean up old runs")


SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def named_folder(root: str | Path, name: str, what: str, example: str) -> Path:
    """`root/name` for a name a user typed (an account, a study): one plain folder name, never a path out of root."""
    if not SAFE_NAME.match(name) or name in (".", ".."):
        raise BacktestError(
            f"{what} '{name}' may hold only letters, digits, '_', '.' and '-' (and is not '.' or '..')",
            f"e.g. {example}",
        )
    return Path(root) / name


def check_output_folder(folder: str | Path, option: str) -> Path:
    """Fail early, before any data is loaded or network trained, if `folder` can't hold what we write.

    It must be a folder (or not exist yet) under a writable folder; nothing is created here.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == folder else f"lies under {probe}, which is a file"
        raise BacktestError(f"{option} {folder} {what}", f"give {option} a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BacktestError(f"{option} {folder}: {probe} is not writable", f"give {option} a folder you can write to")
    return folder


def check_output_file(path: str | Path, option: str) -> Path:
    """Fail early if the file `path` can't be written: its folder must exist, be a folder and be writable."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        what = f"{folder} is a file, not a folder" if folder.exists() else f"the folder {folder} does not exist"
        raise BacktestError(f"{option} {path}: {what}", f"give {option} a file in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BacktestError(
            f"{option} {path}: {folder} is not writable", f"give {option} a file in a folder you can write to"
        )
    if path.is_dir():
        raise BacktestError(f"{option} {path} is a folder", f"give {option} a file name")
    return path


def write_text(path: Path, text: str) -> Path:
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def json_safe(value: Any) -> Any:
    """NaN and infinities as null, NumPy scalars and timestamps as plain values: what JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    if isinstance(value, datetime):  # pandas' Timestamp too
        return value.isoformat()
    return value


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(json_safe(data), indent=2) + "\n")


def write_parquet(path: Path, frame: "pd.DataFrame") -> Path:
    return atomic_write(Path(path), lambda tmp: frame.to_parquet(tmp, index=False))


def write_csv(path: Path, frame: "pd.DataFrame", index: bool = False) -> Path:
    return atomic_write(Path(path), lambda tmp: frame.to_csv(tmp, index=index))


def require_run_dir(path: str | Path, needs: tuple[str, ...] = ("config.toml", "predictions.parquet")) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise BacktestError(f"run dir not found: {path}", "pass a folder under runs/ written by `lstm-trader run`")
    for name in needs:
        if not (path / name).is_file():
            raise BacktestError(f"{path} has no {name}", "pass a run dir written by `lstm-trader run`")
    return path


class FolderLock:
    """An exclusive lock on a folder (`.lock` in it, holding the owner's pid) for as long as the
    `with` block runs; a second process gets a clear error instead of two writers on one run dir
    or study. The operating system drops the lock when its process dies, so a killed run leaves none
    held; a lock released normally (the work done, or refused) removes its file, so a command leaves
    no file behind. The file is removed while still locked, and a taker checks after locking that the
    file it holds is still the one at the path (else it opened a removed one and tries again)."""

    def __init__(
        self,
        folder: Path,
        what: str = "run dir",
        hint: str = "wait for it to finish",
        filename: str = ".lock",
        busy: str = "is already in use",
    ) -> None:
        self.path, self.what, self.hint, self.busy = Path(folder) / filename, what, hint, busy

    def __enter__(self) -> FolderLock:
        while True:
            self.handle = open(self.path, "a+")
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.handle.seek(0)
                owner = self.handle.read().strip() or "?"
                self.handle.close()
                raise BacktestError(f"{self.what} {self.path.parent} {self.busy} (pid {owner})", self.hint) from None
            if self._still_at_path():
                break
            self.handle.close()  # its holder removed it as we opened it: take the new one
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def _still_at_path(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc) -> None:
        try:
            if self._still_at_path():  # (a file someone put there after removing ours is not ours to remove)
                self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()

"""Atomic file writes (standard library only, so light commands can use it without pandas)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, write) -> Path:
    """Call `write(tmp)` on a hidden file beside `path` (same suffix, which some writers need), then
    rename it into place, so `path` is either the old file or the complete new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
    return path

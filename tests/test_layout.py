"""DESIGN.md's dependency direction, checked on the source and at import time."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("forecasting", "strategies", "reports", "backtests", "trading", "lstm_trader")
GROUND = {"forecasting", "strategies", "reports"}
# four floors, no arrow up: lstm_trader -> trading -> backtests -> {forecasting, strategies, reports}
ALLOWED = {
    "forecasting": set(),
    "strategies": set(),
    "reports": set(),
    "backtests": GROUND,
    "trading": GROUND | {"backtests"},
    "lstm_trader": GROUND | {"backtests", "trading"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_design_allows(package):
    for path in (ROOT / package).rglob("*.py"):
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_strategies_and_reports_never_load_tensorflow():
    code = "import sys, strategies, reports; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

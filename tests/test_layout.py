"""DESIGN.md's dependency direction, checked on the source and at import time."""

import ast
import re
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


def _modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its __init__)."""
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `path` imports anywhere in it (a function's deferred import counts too)."""
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports are for annotations: no import at run time
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and "." in name:  # a package's __init__ only re-exports (lazily): not an edge
                found.add(name)
    return found


def test_no_import_circle_between_modules():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


MAX_LINES = 600


def test_no_module_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


# The modules that may choose by the model's task settings: the tasks themselves, the targets they
# build and the settings that declare which combinations are valid. Everywhere else asks the task.
TASK_MODULES = {"forecasting/tasks.py", "forecasting/targets.py", "forecasting/cross_section.py", "forecasting/spec.py"}


def test_no_mode_branch_outside_the_task_modules():
    branches = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = str(path.relative_to(ROOT))
            if name in TASK_MODULES:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"\.(scope|target)\s*(==|!=|in |not in )", code):
                    branches.append(f"{name}:{number}: {line.strip()}")
    assert branches == [], "branches on model.scope / model.target outside the task modules:\n" + "\n".join(branches)

# Two commands for a fresh machine: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1

.PHONY: run test test-all bench clean lint constraints docs

# Installs the versions the test suite last passed with (constraints.txt); `make constraints` refreshes them.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the default experiment on the embedded S&P 500 data; writes runs/default-<time>/
	$(BIN)/lstm-trader run configs/default.toml

test: $(STAMP)  ## lint, format check, the docs site (--strict: a broken link fails), then the fast test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/python -m pytest -q -n 2 --dist loadfile || [ $$? -eq 5 ]  # two workers, a test file each; exit 5 = no tests collected

docs: $(STAMP)  ## the documentation site, built offline into site/ (open site/index.html)
	$(BIN)/python -m lstm_trader.reference docs  # the generated command and config references
	$(BIN)/mkdocs build --strict
	@echo "open: site/index.html"

lint: $(STAMP)  ## fix what ruff can fix and format the tree
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

constraints:  ## refresh constraints.txt: what a fresh, unconstrained install resolves today (then run make test)
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet -e '.[dev]'
	.venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^lstm-trader' > constraints.txt
	rm -rf .venv-constraints

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(STAMP)  ## every benchmark (about 25 minutes: walk-forward, tuning, scale-out and forecast quality take most)
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/run_speed.py
	$(BIN)/python benchmarks/backtest_speed.py
	$(BIN)/python benchmarks/walk_forward_speed.py
	$(BIN)/python benchmarks/tune_speed.py
	$(BIN)/python benchmarks/scale_speed.py
	$(BIN)/python benchmarks/paper_parity.py
	$(BIN)/python benchmarks/forecast_quality.py

clean:
	rm -rf $(VENV) runs studies site .pytest_cache  # paper accounts (paper/) are kept: they hold ledgers

# Two commands for a fresh machine: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg

.PHONY: run test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the default experiment on the embedded S&P 500 data; writes runs/default-<time>/
	$(BIN)/lstm-trader run configs/default.toml

test: $(STAMP)  ## the fast test suite (slow tests: make test-all)
	$(BIN)/python -m pytest -q || [ $$? -eq 5 ]  # exit 5 = no tests collected

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
	rm -rf $(VENV) runs studies .pytest_cache  # paper accounts (paper/) are kept: they hold ledgers

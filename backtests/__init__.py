"""Research orchestration: typed config, the Backtrader engine, experiments, execution, tuning, the
trial ledger, audit, statistics, comparison, cost sensitivity, run dirs and provenance.

Imports the ground floor (`forecasting`, `strategies`, `reports`); `trading` and `lstm_trader`
sit above it and it never imports them.
"""

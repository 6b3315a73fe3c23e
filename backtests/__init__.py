"""Orchestration: typed config, the Backtrader engine, experiments, run dirs, audit and the CLI.

The only package that imports the other three (`forecasting`, `strategies`, `reports`).
"""

"""The command groups of `lstm-trader`, one module each; `lstm_trader.cli` puts them together."""

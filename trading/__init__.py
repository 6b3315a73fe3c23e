"""Deployment: paper accounts that trade the chosen model every day (settle, predict, decide, send),
their brokers (local or Alpaca) and the paper ledger. Imports `backtests`, `forecasting` and
`strategies`; only the command line imports it."""

"""Paper trading: a daily job that trades the chosen model on a local paper ledger or an Alpaca paper account."""

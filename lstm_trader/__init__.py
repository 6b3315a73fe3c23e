"""The front door: the `lstm-trader` command line. Every command parses its options, calls one library
function and prints what it returns; nothing below imports this package."""

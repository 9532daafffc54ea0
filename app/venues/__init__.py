"""Venues: where orders execute. `paper` (built-in matching) and `binance_testnet` (ccxt) share one protocol."""

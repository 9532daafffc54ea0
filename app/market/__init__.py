"""Market data: feeds (simulated, Binance testnet via ccxt) and MarketState, the one source of market truth."""

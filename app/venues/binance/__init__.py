"""Binance Spot (testnet): the one package for Binance plumbing, used by the venue adapter
(`app.venues.binance_testnet.BinanceTestnetVenue`) and the live market feed (`app.market.ccxt_feed`).

`client` builds the ccxt.pro client (testnet URLs, mainnet guard, timeouts, keepalive), `rules` turns exchangeInfo
into symbol filters and SymbolRules, `errors` maps ccxt/Binance failures onto app/errors.py in one place (clean
messages only), `filters` holds the pre-trade checks, `mapping` the order/account wire format, `market_data` the
market-data payloads, `stream` the user-data event plumbing. Retrying and reconnecting: app/retry.py.
"""

"""Binance Spot (testnet) plumbing behind `app.venues.binance_testnet.BinanceTestnetVenue`.

`client` builds the ccxt.pro client, `errors` maps its exceptions onto app/errors.py in one place, `mapping` converts
between Binance's wire format and the venue types, `stream` runs the user-data stream with reconnect/backoff.
"""

"""Tradewind: a self-hosted, real-time crypto trading desk (paper exchange and Binance Spot Testnet)."""

__version__ = "0.1.0"

"""Tradewind: a self-hosted, real-time crypto trading desk (paper exchange and Binance Spot Testnet)."""

from app import native

__version__ = "0.1.0"

# Before any other module of the package is imported: the order path's compiled modules, when a current build
# exists (app/native.py; NATIVE_CORE=off keeps them Python).
native.enable()

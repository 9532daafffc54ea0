"""Test doubles for external services (fake Binance Spot, ...)."""

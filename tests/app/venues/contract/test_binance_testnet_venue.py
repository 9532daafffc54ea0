"""The venue contract on the Binance Spot Testnet adapter, against the project's fake exchange."""

from __future__ import annotations

from .contract import VenueContract
from .harness import BinanceHarness


class TestBinanceTestnetVenue(VenueContract):
    harness = BinanceHarness

"""The venue contract on the Binance Spot Testnet adapter, against the project's fake exchange."""

from __future__ import annotations

from .contract import VenueContract, differs_here
from .harness import BinanceHarness


class TestBinanceTestnetVenue(VenueContract):
    harness = BinanceHarness

    test_the_last_balance_update_is_what_a_balances_read_returns = differs_here(
        VenueContract.test_the_last_balance_update_is_what_a_balances_read_returns,
        "exchange accounts' BALANCE_UPDATE leaves out zero balances that the balances read (and paper's event) lists",
    )

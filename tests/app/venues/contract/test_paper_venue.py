"""The venue contract on the built-in paper exchange."""

from __future__ import annotations

from .contract import VenueContract, differs_here
from .harness import PaperHarness


class TestPaperVenue(VenueContract):
    harness = PaperHarness

    test_one_exit_filling_expires_the_other = differs_here(
        VenueContract.test_one_exit_filling_expires_the_other,
        "paper ends the other OCO leg CANCELED ('OCO: the other leg executed'); Binance, the reference, EXPIRED",
    )
    test_exits_the_venue_refuses_are_both_rejected_with_the_reason = differs_here(
        VenueContract.test_exits_the_venue_refuses_are_both_rejected_with_the_reason,
        "paper submits the exits one by one: only the crossed stop-loss is REJECTED, the take-profit stays OPEN "
        "(Binance refuses the OCO list as a whole)",
    )

"""The venue contract on the built-in paper exchange."""

from __future__ import annotations

from .contract import VenueContract
from .harness import PaperHarness


class TestPaperVenue(VenueContract):
    harness = PaperHarness

"""Which venue an account trades on: the symbol filters that apply to its orders, and (for exchange accounts) a
venue client built from the account's decrypted keys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from app import sealed_keys
from app.crypto import KeyBox
from app.domain import SymbolRules, Venue
from app.venues.base import ExternalVenue
from storage.models import Account

VenueFactory = Callable[[str, str], ExternalVenue]


class VenueDirectory:
    def __init__(
        self, paper_rules: Mapping[str, SymbolRules], keybox: KeyBox, make_binance: VenueFactory | None = None
    ) -> None:
        self.paper_rules = paper_rules
        self.keybox = keybox
        self.make_binance = make_binance
        self._exchange_rules: Mapping[str, SymbolRules] | None = None
        self._rules_lock = asyncio.Lock()

    async def rules_for(self, account: Account) -> Mapping[str, SymbolRules]:
        """The filters orders of this account are validated against (exchangeInfo for testnet accounts)."""
        if account.venue == Venue.PAPER:
            return self.paper_rules
        async with self._rules_lock:
            if self._exchange_rules is None:
                venue = self.open(account)
                try:
                    self._exchange_rules = await venue.load_rules()
                finally:
                    await venue.close()
        return self._exchange_rules

    def remember_rules(self, rules: Mapping[str, SymbolRules]) -> None:
        """A venue loaded exchangeInfo anyway: keep it for intake validation."""
        self._exchange_rules = rules

    def open(self, account: Account) -> ExternalVenue:
        """A venue client for an exchange account; the secret is decrypted here and handed only to the adapter."""
        if self.make_binance is None or account.venue != Venue.BINANCE_TESTNET:
            raise LookupError(f"no venue adapter for {account.venue}")
        api_key, secret = sealed_keys.open_keys(self.keybox, account)  # KeyUnavailable (a LookupError)
        return self.make_binance(api_key, secret)

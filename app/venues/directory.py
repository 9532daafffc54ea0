"""Which venue an account trades on, and the symbol filters that apply to its orders."""

from __future__ import annotations

from collections.abc import Mapping

from app.domain import SymbolRules
from storage.models import Account


class VenueDirectory:
    def __init__(self, paper_rules: Mapping[str, SymbolRules]) -> None:
        self.paper_rules = paper_rules

    def rules_for(self, account: Account) -> Mapping[str, SymbolRules]:
        return self.paper_rules

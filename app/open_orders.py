"""How many orders each account has open per symbol, in memory: intake refuses the 201st (Binance's MAX_NUM_ORDERS
is 200 per symbol), so nothing a stranger sends can grow an account's book without bound.

Exact in one process: intake reserves a slot synchronously before it stores the order (two racing requests cannot
both take the last slot) and gives it back if storing fails; the recorder frees it when an order ends. Loaded from
the database at start-up."""

from __future__ import annotations

from collections.abc import Iterable

from app.errors import ValidationFailed

MAX_OPEN_ORDERS_PER_SYMBOL = 200


class OpenOrderCounts:
    def __init__(self, limit: int = MAX_OPEN_ORDERS_PER_SYMBOL) -> None:
        self.limit = limit
        self._counts: dict[tuple[str, str], int] = {}

    def load(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """(account id, symbol, open orders) as counted in the database."""
        self._counts = {(account_id, symbol): count for account_id, symbol, count in rows if count}

    def reserve(self, account_id: str, symbol: str) -> None:
        """Take a slot for a new order, or raise 422 TOO_MANY_OPEN_ORDERS."""
        key = (account_id, symbol)
        count = self._counts.get(key, 0)
        if count >= self.limit:
            raise ValidationFailed(
                f"at most {self.limit} open orders per account and symbol; cancel some {symbol} orders first",
                code="TOO_MANY_OPEN_ORDERS",
                field="symbol",
            )
        self._counts[key] = count + 1

    def opened(self, account_id: str, symbol: str) -> None:
        """An order opened without intake (a bracket exit, an order imported from the venue)."""
        key = (account_id, symbol)
        self._counts[key] = self._counts.get(key, 0) + 1

    def release(self, account_id: str, symbol: str) -> None:
        """An order ended (or was never stored)."""
        key = (account_id, symbol)
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def count(self, account_id: str, symbol: str) -> int:
        return self._counts.get((account_id, symbol), 0)

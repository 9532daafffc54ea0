"""Equity snapshots: each account's value in the quote currency (USDT) over time, off the order path.

Two triggers, neither inside the execution engine's transaction: a periodic job values every account (one row per
account per minute bucket; a later value in the same minute replaces it), and accounts whose balances changed (the
BALANCE_UPDATE events the engines publish after their commit) are only marked here and valued together by a short
periodic flush. Old minute rows are thinned to one per hour, so a year of curve stays small.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from app.domain import Venue
from app.events import UserEvent
from app.ids import now_ms
from app.market.state import MarketState
from storage.db import Database
from storage.repositories import accounts as account_repo
from storage.repositories import equity as equity_repo

log = logging.getLogger(__name__)

QUOTE = "USDT"
EQUITY_PLACES = Decimal("1e-8")
MINUTE_MS = 60_000
# Minute rows are kept this long; older ones are thinned to the last of each hour.
MINUTE_ROWS_KEPT_MS = 2 * 86_400_000
ACCOUNTS_PER_WRITE = 500

Balances = Iterable[tuple[str, Decimal, Decimal]]
"""(asset, free, locked)."""


def account_value(balances: Balances, price_of: Callable[[str], Decimal | None]) -> Decimal:
    """Free plus locked of every asset, valued at its last price in USDT (USDT at 1). An asset without a USDT
    market on this server counts nothing: there is no price to value it with."""
    total = Decimal(0)
    for asset, free, locked in balances:
        amount = free + locked
        if not amount:
            continue
        price = Decimal(1) if asset == QUOTE else price_of(asset)
        if price is not None:
            total += amount * price
    return total.quantize(EQUITY_PLACES, ROUND_HALF_EVEN)


def minute(ms: int) -> int:
    return ms - ms % MINUTE_MS


class EquityRecorder:
    def __init__(self, db: Database, market: MarketState, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.market = market
        self.clock = clock
        self._changed: set[str] = set()  # accounts whose balances changed since the last flush

    def on_event(self, event: UserEvent) -> None:
        """Called for every published user event: remember accounts whose balances moved (no I/O here)."""
        if event.type == "BALANCE_UPDATE":
            self._changed.add(event.data["account_id"])

    def price_of(self, asset: str) -> Decimal | None:
        symbol = f"{asset}{QUOTE}"
        return self.market.last_price(symbol) if symbol in self.market.symbols else None

    def _priced(self, held: Balances) -> bool:
        """False while an asset held has a USDT market with no price yet (a live feed just after start): such a
        value would be a false dip, so that account's snapshot waits for the next run."""
        return all(
            f"{asset}{QUOTE}" not in self.market.symbols or self.market.last_price(f"{asset}{QUOTE}") is not None
            for asset, free, locked in held
            if asset != QUOTE and (free or locked)
        )

    async def flush_changed(self) -> int:
        """Value the accounts whose balances changed (after fills, resets) since the last flush."""
        changed, self._changed = self._changed, set()
        return await self.snapshot(sorted(changed))

    async def snapshot_all(self) -> int:
        """Value every active account (the periodic job): the curve moves with prices, not only with fills."""
        ids = await self.db.read(
            lambda s: [
                *account_repo.active_ids_for_venue(s, Venue.PAPER),
                *account_repo.active_ids_for_venue(s, Venue.BINANCE_TESTNET),
            ]
        )
        return await self.snapshot(ids)

    async def snapshot(self, account_ids: Sequence[str]) -> int:
        """Write the accounts' current value into this minute's bucket. Returns how many were written."""
        written = 0  # accounts whose value was written
        for start in range(0, len(account_ids), ACCOUNTS_PER_WRITE):
            chunk = account_ids[start : start + ACCOUNTS_PER_WRITE]
            rows = await self.db.read(functools.partial(account_repo.balance_rows, account_ids=chunk))
            holdings: dict[str, list[tuple[str, Decimal, Decimal]]] = {account_id: [] for account_id in chunk}
            for account_id, asset, free, locked in rows:
                holdings[account_id].append((asset, free, locked))
            bucket = minute(self.clock())
            points = [
                (a, bucket, account_value(held, self.price_of)) for a, held in holdings.items() if self._priced(held)
            ]
            await self.db.write(functools.partial(equity_repo.upsert, points=points))
            written += len(points)
        return written

    async def thin(self) -> int:
        """Keep minute rows for two days; older ones only as the last value of each hour."""
        before = self.clock() - MINUTE_ROWS_KEPT_MS
        removed = await self.db.write(lambda s: equity_repo.thin(s, before))
        if removed:
            log.info("thinned %d old equity snapshots", removed)
        return removed

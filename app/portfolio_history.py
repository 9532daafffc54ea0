"""Reads of an account's history: its equity curve (from app/equity.py's snapshots, downsampled) and its
performance per symbol (realized PnL from positions, fees paid from fills), all in USDT as decimal strings."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from app.accounts import AccountService
from app.domain import SymbolRules, fmt
from app.equity import QUOTE, EquityRecorder, account_value
from app.ids import now_ms
from storage.db import Database
from storage.repositories import accounts as account_repo
from storage.repositories import equity as equity_repo
from storage.repositories import orders as order_repo

Interval = Literal["1m", "1h", "1d"]
DAY_MS = 86_400_000
# interval -> (step, how far back the curve reaches): at most 1440, 720 and 366 points.
INTERVALS: dict[str, tuple[int, int]] = {
    "1m": (60_000, DAY_MS),
    "1h": (3_600_000, 30 * DAY_MS),
    "1d": (DAY_MS, 365 * DAY_MS),
}


class PortfolioHistory:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        equity: EquityRecorder,
        rules: Mapping[str, SymbolRules],
        clock: Any = now_ms,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.equity = equity
        self.rules = rules
        self.clock = clock

    async def current_equity(self, account_id: str) -> Decimal:
        rows = await self.db.read(lambda s: account_repo.balances(s, account_id))
        return account_value(((r.asset, r.free, r.locked) for r in rows), self.equity.price_of)

    async def equity_curve(self, user_id: str, account_id: str | None, interval: Interval) -> dict[str, Any]:
        """The last snapshot of every `interval` bucket, oldest first, plus the value now."""
        account = await self.accounts.resolve(user_id, account_id)
        step, reach = INTERVALS[interval]
        now = self.clock()
        start = now - reach
        start -= start % step
        rows = await self.db.read(functools.partial(equity_repo.points, account_id=account.id, start=start))
        last_per_step: dict[int, Decimal] = {}
        for bucket, value in rows:  # oldest first: a later snapshot of the same step replaces an earlier one
            last_per_step[bucket - bucket % step] = value
        return {
            "account_id": account.id,
            "quote": QUOTE,
            "interval": interval,
            "equity": fmt(await self.current_equity(account.id)),
            "points": [{"t": t, "equity": fmt(v)} for t, v in last_per_step.items()],
        }

    async def performance(self, user_id: str, account_id: str | None) -> dict[str, Any]:
        """Per symbol: realized PnL (since the last reset) and fees paid (every fill), both valued in USDT."""
        account = await self.accounts.resolve(user_id, account_id)
        positions = await self.db.fetch(order_repo.POSITIONS, account_id=account.id)
        fills = await self.db.read(functools.partial(equity_repo.fill_fees, user_id=user_id, account_id=account.id))
        realized: dict[str, Decimal] = {p.symbol: p.realized_pnl for p in positions}
        fees: dict[str, Decimal] = {}
        unvalued: set[str] = set()
        for symbol, price, fee, fee_asset in fills:
            value = self._fee_value(symbol, price, fee, fee_asset)
            if value is None:
                unvalued.add(symbol)
                continue
            fees[symbol] = fees.get(symbol, Decimal(0)) + value
        symbols = sorted({*fees, *(s for s, v in realized.items() if v)})
        return {
            "account_id": account.id,
            "quote": QUOTE,
            "equity": fmt(await self.current_equity(account.id)),
            "realized_pnl": fmt(sum(realized.values(), Decimal(0))),
            "fees": fmt(sum(fees.values(), Decimal(0))),
            "symbols": [
                {
                    "symbol": symbol,
                    "realized_pnl": fmt(realized.get(symbol, Decimal(0))),
                    "fees": fmt(fees.get(symbol, Decimal(0))),
                    "fees_complete": symbol not in unvalued,
                }
                for symbol in symbols
            ],
        }

    def _fee_value(self, symbol: str, price: Decimal, fee: Decimal, fee_asset: str) -> Decimal | None:
        """A fill's fee in USDT: the quote asset as it is, the base asset at the fill's price, any other asset
        (BNB on Binance) at its last price; None when there is no price for it."""
        rules = self.rules.get(symbol)
        if rules is not None and fee_asset == rules.base:
            in_quote, quote = fee * price, rules.quote
        else:
            in_quote, quote = fee, fee_asset
        if quote == QUOTE:
            return in_quote
        rate = self.equity.price_of(quote)
        return in_quote * rate if rate is not None else None

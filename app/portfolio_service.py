"""Reads of a user's portfolio (balances, positions with live PnL) and the paper-account reset."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from app.accounts import AccountService, BalanceView
from app.activity import ActivityKind, record_in
from app.config import Settings
from app.domain import Venue, fmt, parse_decimal
from app.errors import Conflict, ValidationFailed
from app.market.state import MarketState
from app.portfolio import average_entry, unrealized
from storage.db import Database
from storage.repositories import orders

MAX_ASSETS = 50
# Paper money is free, but numbers past this make every sum unreadable and every position absurd.
MAX_RESET_AMOUNT = Decimal("1e10")


class AccountResetter(Protocol):
    async def reset_account(self, account_id: str, user_id: str, balances: Mapping[str, Decimal]) -> None: ...


class PortfolioService:
    def __init__(
        self, db: Database, accounts: AccountService, market: MarketState, engine: AccountResetter, settings: Settings
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.market = market
        self.engine = engine
        self.settings = settings

    async def balances(self, user_id: str, account_id: str | None) -> list[BalanceView]:
        return await self.accounts.balances(user_id, account_id)

    async def positions(self, user_id: str, account_id: str | None) -> list[dict[str, Any]]:
        """Open positions (net base quantity from fills), average cost with fees, realized and unrealized PnL."""
        account = await self.accounts.resolve(user_id, account_id)
        rows = await self.db.fetch(orders.POSITIONS, account_id=account.id)
        result = []
        for row in rows:
            if row.quantity == 0 and row.realized_pnl == 0:
                continue
            ticker = self.market.ticker(row.symbol)
            price = ticker.price if ticker else None
            result.append(
                {
                    "symbol": row.symbol,
                    "quantity": fmt(row.quantity),
                    "avg_entry_price": fmt(average_entry(row)),
                    "market_price": fmt(price),
                    "market_value": fmt(row.quantity * price if price is not None else None),
                    "unrealized_pnl": fmt(unrealized(row, price)),
                    "realized_pnl": fmt(row.realized_pnl),
                }
            )
        return result

    async def reset_paper(self, user_id: str, account_id: str, balances: Mapping[str, Any] | None) -> None:
        """Cancel open orders, set balances (default PAPER_BALANCES), start positions from zero; history stays."""
        account = await self.accounts.resolve(user_id, account_id)
        if account.venue != Venue.PAPER:
            raise Conflict("Only paper accounts can be reset.", code="NOT_A_PAPER_ACCOUNT")
        amounts = self.starting_balances(balances)
        await self.engine.reset_account(account.id, user_id, amounts)
        shown = {"account_id": account.id, "balances": ", ".join(f"{fmt(v)} {k}" for k, v in amounts.items())}
        await self.db.write(lambda s: record_in(s, user_id, ActivityKind.PAPER_RESET, detail=shown))

    def starting_balances(self, balances: Mapping[str, Any] | None) -> dict[str, Decimal]:
        """The balances asked for (checked), or PAPER_BALANCES when none are given."""
        return dict(self.settings.paper_balances) if balances is None else parse_balances(balances)


def parse_balances(raw: Mapping[str, Any]) -> dict[str, Decimal]:
    if not isinstance(raw, Mapping) or len(raw) > MAX_ASSETS:
        raise ValidationFailed(f"balances must map up to {MAX_ASSETS} assets to amounts", field="balances")
    parsed: dict[str, Decimal] = {}
    for asset, amount in raw.items():
        if not isinstance(asset, str) or not asset.isalnum() or len(asset) > 16:
            raise ValidationFailed(f"{asset!r} is not an asset symbol", field="balances")
        value = parse_decimal(amount, f"balances.{asset}")
        if value < 0:
            raise ValidationFailed("balances cannot be negative", field=f"balances.{asset}")
        if value >= MAX_RESET_AMOUNT:
            raise ValidationFailed("a paper balance must be below 10000000000", field=f"balances.{asset}")
        parsed[asset.upper()] = value
    return parsed

"""Statements: one account's fills or orders in a time range as CSV (stdlib `csv`), with the same decimal strings
as the API's JSON. The range and the size are checked before the first byte goes out (a clear 422, never a
stream that breaks off); the rows are then read in pages, so a long range never sits in memory at once."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlmodel import Session

from app.accounts import AccountService
from app.domain import fmt
from app.errors import ValidationFailed
from app.ids import now_ms
from app.views import fill_data, order_data
from storage.db import Database
from storage.models import Fill, Order
from storage.repositories import statements as repo

Kind = Literal["fills", "orders"]

DAY_MS = 86_400_000
DEFAULT_SPAN_MS = 30 * DAY_MS
MAX_SPAN_MS = 366 * DAY_MS
MAX_ROWS = 100_000
PAGE_ROWS = 1_000
# Epoch milliseconds accepted: 1970 to the year 2286 (beyond that it is a typo, seconds vs micro-seconds).
MAX_EPOCH_MS = 10**13

FILL_COLUMNS = (
    "time", "ts", "id", "order_id", "account_id", "symbol", "side", "price", "quantity", "quote_quantity", "fee",
    "fee_asset", "liquidity",
)  # fmt: skip
ORDER_COLUMNS = (
    "time", "id", "client_order_id", "account_id", "symbol", "side", "type", "time_in_force", "quantity",
    "quote_quantity", "price", "stop_price", "status", "filled_quantity", "avg_fill_price", "fee", "fee_asset",
    "reject_reason", "parent_id", "take_profit_price", "stop_loss_price", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Statement:
    """A checked export request: whose, which account, which half-open range [start, end) in epoch ms."""

    kind: Kind
    user_id: str
    account_id: str
    start: int
    end: int
    rows: int

    @property
    def filename(self) -> str:
        return f"{self.kind}-{self.account_id}-{_day(self.start)}-{_day(self.end)}.csv"


def parse_time(raw: str | None, field: str) -> int | None:
    """Epoch milliseconds (the API's convention) or an ISO-8601 date or date-time (UTC unless it says otherwise)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.isascii() and text.isdigit():  # not "²": str.isdigit takes digits int() refuses
        value = int(text)
        if value < MAX_EPOCH_MS:
            return value
    else:
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = int(moment.timestamp() * 1000)
        except (ValueError, OverflowError):
            pass
        else:
            if 0 <= value < MAX_EPOCH_MS:  # before 1970 (or year 1 at +14:00) has no file name and no orders
                return value
    raise ValidationFailed(
        f"{field} must be epoch milliseconds or an ISO-8601 date or date-time (2026-12-01T00:00:00Z)", field=field
    )


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, for spreadsheets: 2026-12-02T14:08:59.123Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%d")


class StatementService:
    def __init__(self, db: Database, accounts: AccountService, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock

    async def prepare(
        self, user_id: str, kind: Kind, account_id: str | None, start: str | None, end: str | None
    ) -> Statement:
        """Check the request: the account is the user's (404), `from` <= `to`, the span at most 366 days and
        the rows at most MAX_ROWS (422). Defaults: `to` now, `from` 30 days before `to`."""
        account = await self.accounts.resolve(user_id, account_id)
        end_ms = parse_time(end, "to")
        end_ms = self.clock() if end_ms is None else end_ms
        start_ms = parse_time(start, "from")
        start_ms = end_ms - DEFAULT_SPAN_MS if start_ms is None else start_ms
        if start_ms > end_ms:
            raise ValidationFailed("from must not be after to", field="from")
        if end_ms - start_ms > MAX_SPAN_MS:
            raise ValidationFailed("the range from..to must be at most 366 days", field="from")
        counter = repo.count_fills if kind == "fills" else repo.count_orders
        rows = await self.db.read(lambda s: counter(s, user_id, account.id, start_ms, end_ms))
        if rows > MAX_ROWS:
            raise ValidationFailed(
                f"{rows} {kind} in this range; an export holds at most {MAX_ROWS}: choose a shorter range",
                code="EXPORT_TOO_LARGE",
                field="from",
            )
        return Statement(kind, user_id, account.id, start_ms, end_ms, rows)

    async def stream(self, statement: Statement) -> AsyncIterator[str]:
        """The CSV text: the header line, then one chunk per page of rows, oldest first."""
        columns = FILL_COLUMNS if statement.kind == "fills" else ORDER_COLUMNS
        yield _csv([columns])
        after: repo.Cursor | None = None
        while True:
            page = await self.db.read(functools.partial(self._page, statement=statement, after=after))
            if not page:
                return
            yield _csv(_fill_line(row) if isinstance(row, Fill) else _order_line(row) for row in page)
            last = page[-1]
            after = (last.ts, last.id) if isinstance(last, Fill) else (last.created_at, last.id)
            if len(page) < PAGE_ROWS:
                return

    async def content(self, statement: Statement) -> bytes:
        """The whole CSV at once (the page's download button; bounded by MAX_ROWS)."""
        return "".join([chunk async for chunk in self.stream(statement)]).encode()

    @staticmethod
    def _page(session: Session, statement: Statement, after: repo.Cursor | None) -> Sequence[Fill | Order]:
        read = repo.fills_page if statement.kind == "fills" else repo.orders_page
        return read(session, statement.user_id, statement.account_id, statement.start, statement.end, after, PAGE_ROWS)


def _fill_line(fill: Fill) -> list[Any]:
    data = fill_data(fill)
    data["time"] = iso(fill.ts)
    data["quote_quantity"] = fmt(fill.price * fill.quantity)
    return [data[column] for column in FILL_COLUMNS]


def _order_line(order: Order) -> list[Any]:
    data = order_data(order)
    data["time"] = iso(order.created_at)
    return [data[column] for column in ORDER_COLUMNS]


def _csv(lines: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(lines)
    return buffer.getvalue()

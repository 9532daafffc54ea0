"""The storage floor of one paper market order, for bench/order_pipeline.py's in-process part.

What the durability contract makes every market order write (docs/orders.md): at intake the order row (PENDING)
and its ORDER_UPDATE event, at execution the order's new status, its fill, two more events (ORDER_UPDATE FILLED,
FILL), the users' event numbers and the account's balances and position. Here exactly those rows go through the
app's own write path (storage/bulk.py) into the app's migrated schema, in transactions of `batch` orders as the
in-process part's groups and batches are, with every row built before the clock starts: no validation, matching,
payload building or asyncio. Whatever the pipeline costs per order above this figure is Python around the writes;
the figure itself is what the database (and the driver's binding) costs for the rows.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from app.execution.records import EXECUTION_COLUMNS, OrderRecord
from app.ids import new_id, now_ms
from storage import bulk
from storage.db import create_db_engine
from storage.migrate import upgrade_to_head
from storage.models import Account, Balance, Event, Fill, Order, Position, User

ORDERS = Order.__table__  # type: ignore[attr-defined]
FILLS = Fill.__table__  # type: ignore[attr-defined]
EVENTS = Event.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
BALANCES = Balance.__table__  # type: ignore[attr-defined]
POSITIONS = Position.__table__  # type: ignore[attr-defined]
PAYLOAD_BYTES = {"ORDER_UPDATE": 566, "FILL": 263}  # the sizes the app's events have (measured)


def storage_floor_us(url: str, count: int = 5000, batch: int = 500, users: int = 1) -> float:
    """µs per order for the rows one paper market order writes, `batch` orders per transaction pair, spread round
    robin over `users` users (each with one account). Under the load part's closed loop a transaction holds about
    one order from each of 16 users; every user adds a leaf to each user- or account-keyed index, a row to the
    numbering UPDATE and balance and position rows, so the same orders cost more spread over many users."""
    engine, owners = _migrated_with_users(url, users)
    per_user = max(1, batch // users)
    batches = [
        [_rows(user_id, account_id, per_user) for user_id, account_id in owners] for _ in range(max(1, count // batch))
    ]
    start = time.perf_counter()
    for batch_rows in batches:  # one statement per table for all users, as a group commit and an engine batch write
        with engine.begin() as connection:
            _journal(connection, batch_rows)
        with engine.begin() as connection:
            _execute(connection, batch_rows)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed / (len(batches) * per_user * users) * 1e6


def held_engine_writes_us(url: str, every: int, groups: int = 640, users: int = 16) -> float:
    """µs per order in the load part's shape (one order from each of `users` users per intake transaction) when
    the engine's rows of `every` intake groups are written together, inside every `every`-th intake transaction
    (SQLite's engine writes join an intake group: app/execution/write_behind.py holds them under load)."""
    engine, owners = _migrated_with_users(url, users)
    intake_groups = [[_rows(user_id, account_id, 1) for user_id, account_id in owners] for _ in range(groups)]
    held: list[list[tuple[Rows, Rows]]] = []
    start = time.perf_counter()
    for group in intake_groups:
        with engine.begin() as connection:
            _journal(connection, group)
            held.append(group)
            if len(held) >= every:
                _execute(connection, [({}, _merged([g[n][1] for g in held])) for n in range(users)])
                held = []
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed / (groups * users) * 1e6


def _merged(executions: list[Rows]) -> Rows:
    """One user's engine rows of several orders; balances and the position once (their latest state)."""
    merged: Rows = {"updates": [], "fills": [], "events": []}
    for rows in executions:
        for name in merged:
            merged[name] = merged[name] + rows[name]
    return {**merged, "balances": executions[-1]["balances"], "positions": executions[-1]["positions"]}


def _migrated_with_users(url: str, users: int) -> tuple[Engine, list[tuple[str, str]]]:
    engine = create_db_engine(url)
    upgrade_to_head(engine)
    now = now_ms()
    owners = [(new_id(), new_id()) for _ in range(users)]
    with Session(engine) as session:  # set-up, not measured: the ORM fills every default
        for n, (user_id, _) in enumerate(owners):
            session.add(User(id=user_id, email=f"floor{n}@example.com", password_hash="h", created_at=now))
        session.flush()
        for user_id, account_id in owners:
            session.add(Account(id=account_id, user_id=user_id, venue="paper", label="P", created_at=now))
        session.commit()
    return engine, owners


Rows = dict[str, list[dict[str, Any]]]


def _journal(connection: Connection, batch: list[tuple[Rows, Rows]]) -> None:
    bulk.insert_rows(connection, ORDERS, _all(batch, 0, "orders"))
    _events(connection, [intake for intake, _ in batch])


def _execute(connection: Connection, batch: list[tuple[Rows, Rows]]) -> None:
    bulk.update_rows(connection, ORDERS, "id", EXECUTION_COLUMNS, _all(batch, 1, "updates"))
    bulk.insert_rows(connection, FILLS, _all(batch, 1, "fills"))
    bulk.upsert_rows(connection, BALANCES, ("account_id", "asset"), _all(batch, 1, "balances"))
    bulk.upsert_rows(connection, POSITIONS, ("account_id", "symbol"), _all(batch, 1, "positions"))
    _events(connection, [execution for _, execution in batch])


def _all(batch: list[tuple[Rows, Rows]], part: int, name: str) -> list[dict[str, Any]]:
    return [row for rows in batch for row in rows[part][name]]


def _events(connection: Connection, by_user: list[Rows]) -> None:
    """Every user's events numbered in one call (the app's `UPDATE users … RETURNING`, users in id order)."""
    by_user = sorted(by_user, key=lambda rows: rows["events"][0]["user_id"])
    amounts = [(rows["events"][0]["user_id"], len(rows["events"])) for rows in by_user]
    lasts = bulk.add_returning_many(connection, USERS, "id", "last_seq", amounts)
    events = []
    for rows, last in zip(by_user, lasts, strict=True):
        for seq, row in enumerate(rows["events"], start=last - len(rows["events"]) + 1):
            row["seq"] = seq
            events.append(row)
    bulk.insert_rows(connection, EVENTS, events)


def _rows(user_id: str, account_id: str, count: int) -> tuple[Rows, Rows]:
    now = now_ms()
    orders = [
        OrderRecord(
            id=(order_id := new_id()),
            user_id=user_id,
            account_id=account_id,
            client_order_id=f"tw{order_id}",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            status="PENDING",
            created_at=now,
            updated_at=now,
            quantity=Decimal("0.0001"),
        )
        for _ in range(count)
    ]
    price, fee = Decimal("60000.01"), Decimal("0.0000001")

    def event(kind: str) -> dict[str, Any]:
        return {"user_id": user_id, "seq": 0, "type": kind, "payload": "x" * PAYLOAD_BYTES[kind], "ts": now}

    intake = {"orders": [order.as_row() for order in orders], "events": [event("ORDER_UPDATE") for _ in orders]}
    updates = []
    for order in orders:
        order.status, order.filled_quantity, order.filled_quote = "FILLED", order.quantity or Decimal(0), price
        order.fee, order.fee_asset, order.updated_at = fee, "BTC", now
        updates.append({**{c: getattr(order, c) for c in EXECUTION_COLUMNS}, "_key": order.id})
    fills = [
        {
            "id": new_id(),
            "order_id": order.id,
            "user_id": user_id,
            "account_id": account_id,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "price": price,
            "quantity": order.quantity,
            "fee": fee,
            "fee_asset": "BTC",
            "liquidity": "TAKER",
            "venue_trade_id": None,
            "ts": now,
        }
        for order in orders
    ]
    execution = {
        "updates": updates,
        "fills": fills,
        "balances": [
            {"account_id": account_id, "asset": "BTC", "free": Decimal("1"), "locked": Decimal(0)},
            {"account_id": account_id, "asset": "USDT", "free": Decimal("1000"), "locked": Decimal(0)},
        ],
        "positions": [
            {
                "account_id": account_id,
                "symbol": "BTCUSDT",
                "quantity": Decimal(1),
                "cost": Decimal(60000),
                "realized_pnl": Decimal(0),
            }
        ],
        "events": [event(kind) for _ in orders for kind in ("ORDER_UPDATE", "FILL")],
    }
    return intake, execution


if __name__ == "__main__":  # the held-writes table of docs/orders.md ("Speed"), on SQLite in a temporary folder
    import tempfile

    for _ in range(3):
        figures = []
        for every in (1, 2, 4, 8, 16, 10**9):
            url = f"sqlite:///{tempfile.mkdtemp()}/floor.db"
            figures.append(f"{'never' if every == 10**9 else every}: {held_engine_writes_us(url, every):.0f}")
        print("engine rows written with every k-th intake group, µs per order:", ", ".join(figures))

"""Driver-level reads (storage/driver_reads.py) give what the ORM gives: the same rows, the same exact Decimals, only
the caller's; and they fail the way Core does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import column, select, table
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.ids import new_id
from storage.db import Database
from storage.driver_reads import DriverRead, DriverReader
from storage.models import Account, Balance, Fill, Order, Position, User
from storage.repositories import accounts, orders

T0 = 1_764_547_200_000
AMOUNTS = [
    Decimal("0"),
    Decimal("1.50"),
    Decimal("0.000000000000000001"),
    Decimal("99999999999999999999.999999999999999999"),
]


@pytest.fixture
async def db(database_url: str) -> Any:
    database = Database(database_url)
    yield database
    await database.aclose()


def _user(session: Session, label: str = "A") -> tuple[str, str]:
    user_id, account_id = new_id(), new_id()
    session.add(User(id=user_id, email=f"{user_id}@x.io", password_hash="h", created_at=T0))
    session.flush()
    session.add(Account(id=account_id, user_id=user_id, venue="paper", label=label, created_at=T0))
    session.flush()
    return user_id, account_id


def _order(user_id: str, account_id: str, n: int, status: str, symbol: str = "BTCUSDT") -> Order:
    return Order(
        id=f"01K{n:023d}",
        user_id=user_id,
        account_id=account_id,
        client_order_id=f"c{n}",
        symbol=symbol,
        side="BUY",
        type="LIMIT",
        status=status,
        quantity=Decimal("0.001"),
        price=Decimal("60000.10"),
        filled_quantity=Decimal(0),
        created_at=T0 + n,
        updated_at=T0 + n,
    )


async def test_balances_and_positions_are_the_exact_decimals_the_orm_reads(db: Database) -> None:
    def store(session: Session) -> str:
        _, account_id = _user(session)
        for n, amount in enumerate(AMOUNTS):
            session.add(Balance(account_id=account_id, asset=f"A{n}", free=amount, locked=amount))
            session.add(Position(account_id=account_id, symbol=f"S{n}USDT", quantity=amount, cost=amount))
        return account_id

    account_id = db.run_sync(store)
    balances = await db.fetch(accounts.BALANCES, account_id=account_id)
    positions = await db.fetch(orders.POSITIONS, account_id=account_id)
    orm_balances = db.run_sync(lambda s: [(b.asset, b.free, b.locked) for b in accounts.balances(s, account_id)])
    orm_positions = db.run_sync(
        lambda s: [(p.symbol, p.quantity, p.cost, p.realized_pnl) for p in orders.positions(s, account_id)]
    )
    assert [(b.asset, b.free, b.locked) for b in balances] == orm_balances
    assert [(p.symbol, p.quantity, p.cost, p.realized_pnl) for p in positions] == orm_positions
    # Exact and canonical as stored values come back everywhere: the same text, not just equal numbers.
    assert [str(b.free) for b in balances] == ["0", "1.5", "1E-18", "99999999999999999999.999999999999999999"]
    assert all(isinstance(p.quantity, Decimal) for p in positions)
    assert await db.fetch(accounts.BALANCES, account_id=new_id()) == []


async def test_an_account_is_resolved_for_its_owner_only_and_never_once_deleted(db: Database) -> None:
    def store(session: Session) -> tuple[str, str, str, str]:
        user_id, account_id = _user(session)
        stranger, _ = _user(session, "theirs")
        gone = new_id()
        session.add(Account(id=gone, user_id=user_id, venue="paper", label="gone", created_at=T0, deleted_at=T0 + 1))
        return user_id, account_id, stranger, gone

    user_id, account_id, stranger, gone = db.run_sync(store)

    async def owned(owner: str, account: str) -> Account | None:
        return await db.fetch_in(lambda reader: accounts.owned(reader, owner, account))

    found = await owned(user_id, account_id)
    orm = db.run_sync(lambda s: accounts.get_owned(s, user_id, account_id))
    assert isinstance(found, Account) and orm is not None
    assert found.model_dump() == orm.model_dump()
    assert await owned(stranger, account_id) is None
    assert await owned(user_id, gone) is None
    assert await owned(user_id, new_id()) is None


async def test_a_users_orders_are_listed_newest_first_across_accounts_and_only_theirs(db: Database) -> None:
    def store(session: Session) -> tuple[str, str, str]:
        user_id, first = _user(session)
        second = new_id()
        session.add(Account(id=second, user_id=user_id, venue="paper", label="B", created_at=T0))
        stranger, theirs = _user(session, "theirs")
        session.flush()
        statuses = ["OPEN", "FILLED", "PENDING", "CANCELED", "PARTIALLY_FILLED", "OPEN"]
        for n, status in enumerate(statuses):
            session.add(_order(user_id, first if n % 2 else second, n, status, "ETHUSDT" if n == 5 else "BTCUSDT"))
        session.add(_order(stranger, theirs, 9, "OPEN"))
        return user_id, first, stranger

    user_id, first, stranger = db.run_sync(store)

    async def listed(**filters: Any) -> list[int]:
        rows = await db.fetch_plan(lambda: orders.list_for_user(user_id, **filters))
        return [int(row.id[3:]) for row in rows]

    assert await listed() == [5, 4, 3, 2, 1, 0]
    assert await listed(statuses=orders.OPEN_STATUSES) == [5, 4, 2, 0]
    assert await listed(statuses=("OPEN",), symbol="BTCUSDT") == [0]
    assert await listed(statuses=("FILLED", "CANCELED")) == [3, 1]
    assert await listed(account_id=first) == [5, 3, 1]
    assert await listed(before="01K" + f"{4:023d}", limit=2) == [3, 2]
    assert await listed(account_id=new_id()) == []
    theirs = await db.fetch_plan(lambda: orders.list_for_user(stranger))
    assert [row.id for row in theirs] == ["01K" + f"{9:023d}"]

    # The whole row, as the ORM has it.
    [row] = await db.fetch_plan(lambda: orders.list_for_user(user_id, symbol="ETHUSDT"))
    orm = db.run_sync(lambda s: orders.get(s, row.id))
    assert orm is not None
    assert row._asdict() == {name: getattr(orm, name) for name in row._fields}


async def test_an_order_with_its_fills_is_found_for_its_owner_only(db: Database) -> None:
    def store(session: Session) -> tuple[str, str]:
        user_id, account_id = _user(session)
        order = _order(user_id, account_id, 1, "FILLED")
        session.add(order)
        session.flush()
        for n, ts in enumerate((T0 + 7, T0 + 3)):
            session.add(
                Fill(
                    id=new_id(),
                    order_id=order.id,
                    user_id=user_id,
                    account_id=account_id,
                    symbol="BTCUSDT",
                    side="BUY",
                    price=Decimal("60000.10"),
                    quantity=Decimal("0.0005"),
                    fee=Decimal(n),
                    fee_asset="BTC",
                    liquidity="MAKER",
                    ts=ts,
                )
            )
        return user_id, order.id

    user_id, order_id = db.run_sync(store)
    found = await db.fetch_plan(lambda: orders.owned_with_fills(user_id, order_id))
    assert found is not None
    order, fills = found
    assert (order.id, order.price, order.status) == (order_id, Decimal("60000.1"), "FILLED")
    assert [(f.ts, f.fee) for f in fills] == [(T0 + 3, Decimal(1)), (T0 + 7, Decimal(0))]
    assert await db.fetch_plan(lambda: orders.owned_with_fills(new_id(), order_id)) is None


async def test_a_driver_error_arrives_as_sqlalchemys_and_leaves_the_pool_usable(db: Database) -> None:
    missing = DriverRead(select(column("x")).select_from(table("no_such_table")))
    with pytest.raises(DBAPIError) as raised:
        await db.fetch(missing)
    assert not raised.value.connection_invalidated
    assert await db.fetch(accounts.BALANCES, account_id=new_id()) == []


async def test_every_parameter_must_be_given(db: Database) -> None:
    with pytest.raises(TypeError, match="missing parameters: account_id"):
        await db.fetch(accounts.BALANCES)  # never a silent NULL


async def test_a_read_holds_no_transaction_and_gives_its_connection_back_as_it_was(db: Database) -> None:
    """PostgreSQL: each statement is its own transaction (no BEGIN before it, no ROLLBACK at the pool: one round
    trip, not three); the connection returns to the pool out of autocommit, as the sessions expect it."""
    seen: list[tuple[Any, object]] = []

    def work(reader: DriverReader) -> list[Any]:
        rows = reader.rows(accounts.BALANCES, account_id=new_id())
        driver = reader.connection.driver_connection
        seen.append((driver, driver.in_transaction if db.is_sqlite else driver.info.transaction_status))
        return rows

    assert await db.fetch_in(work) == []
    [(driver, state)] = seen
    if db.is_sqlite:
        assert state is False
    else:
        assert state == psycopg.pq.TransactionStatus.IDLE  # not INTRANS: nothing was begun
        assert driver.autocommit is False


async def test_a_failed_read_gives_its_connection_back_as_it_was(db: Database) -> None:
    drivers: list[Any] = []

    def work(reader: DriverReader) -> list[Any]:
        drivers.append(reader.connection.driver_connection)
        return reader.rows(DriverRead(select(column("x")).select_from(table("no_such_table"))))

    with pytest.raises(DBAPIError):
        await db.fetch_in(work)
    if not db.is_sqlite:
        assert drivers[0].autocommit is False
        assert drivers[0].info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_read_with_an_expanding_parameter_is_refused(db: Database) -> None:
    table = Order.__table__  # type: ignore[attr-defined]
    expanding = DriverRead(select(table.c.id).where(table.c.status.in_(["OPEN", "FILLED"])))
    with pytest.raises(ValueError, match="expanding"):
        db.run_sync(lambda s: expanding.rows(s.connection().connection, db.engine.dialect, {}))


async def test_a_read_whose_connection_was_found_lost_runs_once_more_on_another(database_url: str) -> None:
    db = Database(database_url, inline=False)  # the reader pool's path, as on PostgreSQL
    calls: list[DriverReader] = []

    def work(reader: DriverReader) -> str:
        calls.append(reader)
        if len(calls) == 1:
            raise DBAPIError("SELECT 1", None, Exception("server closed the connection"), connection_invalidated=True)
        return "read"

    try:
        assert await db.fetch_in(work) == "read"
        assert len(calls) == 2
    finally:
        db.close()

"""Driver-level statements (storage/bulk.py) on SQLite and PostgreSQL: positional binding, exact money, upserts,
event-number increments."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from app.ids import new_id, now_ms
from storage import bulk
from storage.db import Database, is_transient
from storage.models import Account, Balance, Order, User

BALANCES = Balance.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def _user_and_account(db: Database) -> tuple[str, str]:
    user_id, account_id = new_id(), new_id()

    def store(session: Session) -> None:
        session.add(User(id=user_id, email=f"{user_id}@x.io", password_hash="h", created_at=now_ms()))
        session.flush()
        session.add(Account(id=account_id, user_id=user_id, venue="paper", label="P", created_at=now_ms()))

    db.run_sync(store)
    return user_id, account_id


def _balances(db: Database, account_id: str) -> dict[str, tuple[Decimal, Decimal]]:
    rows = db.run_sync(lambda s: list(s.exec(select(Balance).where(Balance.account_id == account_id))))
    return {row.asset: (row.free, row.locked) for row in rows}


def test_upsert_inserts_new_rows_and_updates_existing_ones_exactly(db: Database) -> None:
    _, account_id = _user_and_account(db)
    first = [
        {"account_id": account_id, "asset": "BTC", "free": Decimal("0.00000001"), "locked": Decimal(0)},
        {"account_id": account_id, "asset": "USDT", "free": Decimal("100.5"), "locked": Decimal("2")},
    ]
    db.run_sync(lambda s: bulk.upsert_rows(s.connection(), BALANCES, ("account_id", "asset"), first))
    assert _balances(db, account_id) == {
        "BTC": (Decimal("0.00000001"), Decimal(0)),
        "USDT": (Decimal("100.5"), Decimal(2)),
    }

    second = [
        {"account_id": account_id, "asset": "USDT", "free": Decimal("99999999999.123456789"), "locked": Decimal(0)}
    ]
    db.run_sync(lambda s: bulk.upsert_rows(s.connection(), BALANCES, ("account_id", "asset"), second))
    assert _balances(db, account_id) == {
        "BTC": (Decimal("0.00000001"), Decimal(0)),
        "USDT": (Decimal("99999999999.123456789"), Decimal(0)),
    }


def test_money_columns_refuse_floats_and_write_nothing(db: Database) -> None:
    _, account_id = _user_and_account(db)
    rows = [{"account_id": account_id, "asset": "BTC", "free": 0.1, "locked": Decimal(0)}]
    with pytest.raises(Exception, match="Decimal"):
        db.run_sync(lambda s: bulk.upsert_rows(s.connection(), BALANCES, ("account_id", "asset"), rows))
    assert _balances(db, account_id) == {}


def test_insert_and_update_bind_every_column_to_its_own_name(db: Database) -> None:
    """Positional binding: a value must land in its own column whatever the order of the row's keys."""
    user_id, account_id = _user_and_account(db)
    order_id, now = new_id(), now_ms()
    row = {
        "symbol": "ETHUSDT",
        "id": order_id,
        "quantity": Decimal("1.5"),
        "price": Decimal("2000.25"),
        "account_id": account_id,
        "user_id": user_id,
        "client_order_id": "mine-1",
        "side": "SELL",
        "type": "LIMIT",
        "status": "PENDING",
        "filled_quantity": Decimal(0),
        "filled_quote": Decimal(0),
        "fee": Decimal(0),
        "external": False,
        "created_at": now,
        "updated_at": now + 1,
    }
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, [row]))
    update = {"fee": Decimal("0.001"), "_key": order_id, "status": "FILLED"}
    db.run_sync(lambda s: bulk.update_rows(s.connection(), ORDERS, "id", ("status", "fee"), [update]))

    stored = db.run_sync(lambda s: s.get(Order, order_id))
    assert stored is not None
    assert (stored.symbol, stored.side, stored.type, stored.client_order_id) == ("ETHUSDT", "SELL", "LIMIT", "mine-1")
    assert (stored.quantity, stored.price, stored.fee) == (Decimal("1.5"), Decimal("2000.25"), Decimal("0.001"))
    assert (stored.status, stored.created_at, stored.updated_at) == ("FILLED", now, now + 1)
    assert row["quantity"] == Decimal("1.5"), "the caller's row is not changed"


def test_add_returning_increments_and_returns_the_new_value(db: Database) -> None:
    user_id, _ = _user_and_account(db)
    other_id, _ = _user_and_account(db)

    def bump(session: Session) -> tuple[int, int]:
        first = bulk.add_returning(session.connection(), USERS, "id", user_id, "last_seq", 3)
        return first, bulk.add_returning(session.connection(), USERS, "id", user_id, "last_seq", 2)

    assert db.run_sync(bump) == (3, 5)
    assert db.run_sync(lambda s: s.get(User, other_id)).last_seq == 0  # type: ignore[union-attr]


def test_add_returning_many_returns_each_rows_new_value_in_the_order_given(db: Database) -> None:
    first_id, _ = _user_and_account(db)
    second_id, _ = _user_and_account(db)
    amounts = sorted([(first_id, 3), (second_id, 1)])

    def bump(session: Session) -> tuple[list[int], list[int]]:
        connection = session.connection()
        once = bulk.add_returning_many(connection, USERS, "id", "last_seq", amounts)
        return once, bulk.add_returning_many(connection, USERS, "id", "last_seq", [(first_id, 2), (second_id, 5)])

    once, twice = db.run_sync(bump)
    assert once == [amount for _, amount in amounts]
    assert twice == [5, 6]
    assert db.run_sync(lambda s: bulk.add_returning_many(s.connection(), USERS, "id", "last_seq", [])) == []


@pytest.mark.parametrize("rows", [1, 3], ids=["one row", "several rows"])
def test_driver_errors_arrive_as_sqlalchemys_and_the_transaction_writes_nothing(db: Database, rows: int) -> None:
    """Statements bypass Connection.exec_driver_sql; callers still catch SQLAlchemy's IntegrityError (a duplicate
    client order id is a 409, storage.db.is_transient decides retries). On PostgreSQL one row is an INSERT and
    several a COPY: both report the same way."""
    user_id, account_id = _user_and_account(db)
    now = now_ms()
    order = {
        "id": new_id(), "user_id": user_id, "account_id": account_id, "client_order_id": "dup", "symbol": "BTCUSDT",
        "side": "BUY", "type": "MARKET", "quantity": Decimal(1), "price": None, "status": "PENDING",
        "filled_quantity": Decimal(0), "filled_quote": Decimal(0), "fee": Decimal(0), "external": False,
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, [order]))

    def again(session: Session) -> None:
        bulk.add_returning(session.connection(), USERS, "id", user_id, "last_seq", 1)
        fresh = [{**order, "id": new_id(), "client_order_id": f"new-{n}"} for n in range(rows - 1)]
        bulk.insert_rows(session.connection(), ORDERS, [*fresh, {**order, "id": new_id()}])

    with pytest.raises(IntegrityError) as raised:
        db.run_sync(again)
    assert not is_transient(raised.value)
    assert db.run_sync(lambda s: s.get(User, user_id)).last_seq == 0  # type: ignore[union-attr]
    stored = db.run_sync(lambda s: list(s.exec(select(Order.client_order_id).where(Order.account_id == account_id))))
    assert stored == ["dup"]


def test_one_row_and_several_rows_are_stored_exactly(db: Database) -> None:
    """PostgreSQL sends one row as an INSERT (one round trip) and several by COPY: the same rows either way."""
    _, account_id = _user_and_account(db)
    one = [{"account_id": account_id, "asset": "BTC", "free": Decimal("0.00000001"), "locked": Decimal(0)}]
    several = [
        {"account_id": account_id, "asset": asset, "free": Decimal(f"{n}.25"), "locked": Decimal("0.5")}
        for n, asset in enumerate(("ETH", "USDT", "BNB"), start=1)
    ]
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), BALANCES, one))
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), BALANCES, several))
    assert _balances(db, account_id) == {
        "BTC": (Decimal("0.00000001"), Decimal(0)),
        "ETH": (Decimal("1.25"), Decimal("0.5")),
        "USDT": (Decimal("2.25"), Decimal("0.5")),
        "BNB": (Decimal("3.25"), Decimal("0.5")),
    }


def test_upsert_rows_sharing_a_key_leave_the_last_ones_values(db: Database) -> None:
    _, account_id = _user_and_account(db)
    rows = [
        {"account_id": account_id, "asset": "USDT", "free": Decimal("10"), "locked": Decimal("1")},
        {"account_id": account_id, "asset": "BTC", "free": Decimal("0.5"), "locked": Decimal(0)},
        {"account_id": account_id, "asset": "USDT", "free": Decimal("7.25"), "locked": Decimal("0.75")},
    ]
    db.run_sync(lambda s: bulk.upsert_rows(s.connection(), BALANCES, ("account_id", "asset"), rows))
    assert _balances(db, account_id) == {"USDT": (Decimal("7.25"), Decimal("0.75")), "BTC": (Decimal("0.5"), 0)}


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="a server session to end is PostgreSQL's")
def test_a_connection_lost_mid_statement_is_invalidated_and_reported_transient(db: Database) -> None:
    """The group commit and the engine retry what storage.db.is_transient calls transient: a lost connection must
    still be recognised when the statement went to the driver directly."""
    _, account_id = _user_and_account(db)
    row = {"account_id": account_id, "asset": "USDT", "free": Decimal(1), "locked": Decimal(0)}

    seen: list[DBAPIError] = []

    def lose_connection_then_write(session: Session) -> None:
        connection = session.connection()
        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        admin = create_engine(db.url)
        with admin.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        admin.dispose()
        try:
            bulk.insert_rows(connection, BALANCES, [row])
        except DBAPIError as error:
            seen.append(error)
            raise

    with pytest.raises(DBAPIError):
        db.run_sync(lose_connection_then_write)
    assert len(seen) == 1, "the statement itself failed"
    assert seen[0].connection_invalidated
    assert is_transient(seen[0])
    assert _balances(db, account_id) == {}, "nothing was written; the next session works on a new connection"


def test_update_rows_sharing_a_key_leave_the_last_ones_values_and_touch_no_other_row(db: Database) -> None:
    user_id, account_id = _user_and_account(db)
    now = now_ms()
    ids = [new_id(), new_id()]
    orders = [
        {
            "id": order_id, "user_id": user_id, "account_id": account_id, "client_order_id": f"c{i}",
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": Decimal(2), "price": Decimal("100.5"),
            "status": "PENDING", "filled_quantity": Decimal(0), "filled_quote": Decimal(0), "fee": Decimal(0),
            "fee_asset": None, "sent_at": None, "external": False, "created_at": now, "updated_at": now,
        }
        for i, order_id in enumerate(ids)
    ]  # fmt: skip
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, orders))
    columns = ("status", "filled_quantity", "fee", "fee_asset", "sent_at")
    updates = [
        {"_key": ids[0], "status": "PARTIALLY_FILLED", "filled_quantity": Decimal(1), "fee": Decimal("0.1"),
         "fee_asset": "BNB", "sent_at": now + 1},
        {"_key": ids[0], "status": "FILLED", "filled_quantity": Decimal(2), "fee": Decimal("0.000000000000000001"),
         "fee_asset": None, "sent_at": None},
    ]  # fmt: skip
    db.run_sync(lambda s: bulk.update_rows(s.connection(), ORDERS, "id", columns, updates))

    first, second = (db.run_sync(lambda s, i=i: s.get(Order, i)) for i in ids)  # type: ignore[misc]
    assert (first.status, first.filled_quantity, first.fee, first.fee_asset, first.sent_at) == (
        "FILLED", Decimal(2), Decimal("0.000000000000000001"), None, None
    )  # fmt: skip
    assert (second.status, second.filled_quantity, second.price) == ("PENDING", Decimal(0), Decimal("100.5"))


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") != "postgres", reason="PostgreSQL's prepared statements")
def test_an_update_by_key_is_planned_at_every_run_never_prepared(db: Database) -> None:
    """psycopg prepares a statement on its fifth run, and PostgreSQL keeps the generic plan it makes then, for the
    table as it was (young: a scan of every row), until the table is analysed again."""
    user_id, account_id = _user_and_account(db)
    order = _market_order(user_id, account_id)
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, [order]))

    def update_eight_times_then_count_prepared(session: Session) -> int:
        connection = session.connection()
        for n in range(8):
            update = {"_key": order["id"], "status": "OPEN", "updated_at": n}
            bulk.update_rows(connection, ORDERS, "id", ("status", "updated_at"), [update])
        prepared = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %(start)s", {"start": "UPDATE%"}
        )
        return int(prepared.scalar_one())

    assert db.run_sync(update_eight_times_then_count_prepared) == 0
    assert db.run_sync(lambda s: s.get(Order, order["id"])).updated_at == 7


def _sql_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    original = bulk._execute_many

    def recording(connection: Any, sql: str, params: list[Any]) -> None:
        sent.append(sql)
        original(connection, sql, params)

    monkeypatch.setattr(bulk, "_execute_many", recording)
    return sent


def _market_order(user_id: str, account_id: str, **changes: Any) -> dict[str, Any]:
    now, order_id = now_ms(), new_id()
    # Every column, as OrderRecord.as_row gives them; a market order leaves most of them None.
    row: dict[str, Any] = {column.name: None for column in ORDERS.columns}
    row.update(
        id=order_id, user_id=user_id, account_id=account_id, client_order_id=f"tw{order_id}", symbol="BTCUSDT",
        side="BUY", type="MARKET", quantity=Decimal("0.5"), status="PENDING", filled_quantity=Decimal(0),
        filled_quote=Decimal(0), fee=Decimal(0), external=False, created_at=now, updated_at=now,
    )  # fmt: skip
    row.update(changes)
    return row


@pytest.mark.skipif(os.environ.get("TW_TEST_DB") == "postgres", reason="SQLite's statements (PostgreSQL copies)")
def test_sqlite_leaves_out_columns_that_are_none_in_every_row_and_stores_them_null(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, account_id = _user_and_account(db)
    rows = [_market_order(user_id, account_id) for _ in range(3)]
    sent = _sql_sent(monkeypatch)
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, rows))

    [sql] = sent
    named = sql.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert "price" not in named and "stop_price" not in named and "parent_id" not in named
    assert named == [c.name for c in ORDERS.columns if rows[0][c.name] is not None]
    stored = db.run_sync(lambda s: s.get(Order, rows[1]["id"]))
    assert stored is not None and (stored.quantity, stored.price, stored.parent_id) == (Decimal("0.5"), None, None)


def test_rows_that_differ_in_their_none_columns_are_each_stored_exactly(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, account_id = _user_and_account(db)
    market = _market_order(user_id, account_id)
    limit = _market_order(user_id, account_id, type="LIMIT", price=Decimal("100.25"), time_in_force="GTC")
    sent = _sql_sent(monkeypatch)
    db.run_sync(lambda s: bulk.insert_rows(s.connection(), ORDERS, [market, limit]))

    if os.environ.get("TW_TEST_DB") != "postgres":
        [sql] = sent
        assert " price," in sql and "time_in_force" in sql  # every column named: one statement for both rows
    stored = {row["id"]: db.run_sync(lambda s, i=row["id"]: s.get(Order, i)) for row in (market, limit)}  # type: ignore[misc]
    assert (stored[market["id"]].price, stored[market["id"]].time_in_force) == (None, None)  # type: ignore[union-attr]
    assert (stored[limit["id"]].price, stored[limit["id"]].time_in_force) == (Decimal("100.25"), "GTC")  # type: ignore[union-attr]


def test_a_none_in_a_column_with_a_server_default_is_still_sent() -> None:
    """Left out, such a column would take its default, not NULL: it stays in the statement."""
    metadata = MetaData()
    table = Table(
        "t",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("note", String, nullable=True, server_default="unset"),
        Column("extra", String, nullable=True),
    )
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        bulk.insert_rows(connection, table, [{"id": 1, "note": None, "extra": None}])
        assert connection.exec_driver_sql("SELECT note, extra FROM t").one() == (None, None)
    engine.dispose()


def test_sqlite_binds_none_through_a_registered_adapter() -> None:
    """storage.db registers one (a type without an adapter is sqlite3's slow path); it must still bind NULL."""
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    connection = sqlite3.connect(":memory:")
    assert connection.execute("SELECT ? IS NULL", (None,)).fetchone() == (1,)
    connection.close()

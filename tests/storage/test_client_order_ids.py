"""Client order ids: one a caller chose is unique in its account through the partial unique index; one Tradewind made
("tw" + the order's id) is unique by construction, takes no index entry and is found by primary key. The migration
that made the index partial keeps every row and the fills that point at them, on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import Boolean, Engine, Integer, MetaData, Table, insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine
from sqlmodel import Session, col, select

from app.ids import VENUE_CLIENT_ID_PREFIX, new_id, venue_client_order_id
from storage.db import Database, create_db_engine
from storage.migrate import alembic_config, foreign_keys_checked_at_the_end, upgrade_to_head
from storage.models import (
    CALLERS_CLIENT_ORDER_ID,
    MADE_CLIENT_ORDER_ID,
    MADE_CLIENT_ORDER_ID_PREFIX,
    Order,
    SQLModel,
)
from storage.repositories.orders import (
    by_client_order_id,
    callers_client_order_id_query,
    callers_client_order_ids_read,
    with_callers_client_order_ids,
    with_client_order_id,
)
from tests.conftest import BACKEND, PG_ADMIN
from tests.storage.test_order_indexes import plan

TABLES = SQLModel.metadata.tables
BEFORE = "a1b2c3d4e5f6"  # the revision before the index became partial


def test_storage_knows_the_client_order_ids_the_app_makes() -> None:
    assert MADE_CLIENT_ORDER_ID_PREFIX == VENUE_CLIENT_ID_PREFIX
    order_id = new_id()
    assert MADE_CLIENT_ORDER_ID.fullmatch(venue_client_order_id(order_id))
    for near_miss in ("tw" + order_id.lower(), "tw" + order_id[:-1], "tw" + order_id + "0", "TW" + order_id):
        assert not MADE_CLIENT_ORDER_ID.fullmatch(near_miss)


def user_account_rows(engine: Engine) -> tuple[str, str]:
    user_id, account_id = new_id(), new_id()
    with engine.begin() as connection:
        connection.execute(
            insert(TABLES["users"]),
            {"id": user_id, "email": f"{user_id}@example.com", "password_hash": "x", "created_at": 1},
        )
        connection.execute(
            insert(TABLES["accounts"]),
            {"id": account_id, "user_id": user_id, "venue": "PAPER", "label": "main", "created_at": 1},
        )
    return user_id, account_id


def order_row(user_id: str, account_id: str, client_order_id: str | None = None, **fields: Any) -> dict[str, Any]:
    order_id = fields.pop("id", None) or new_id()
    return {
        "id": order_id,
        "user_id": user_id,
        "account_id": account_id,
        "client_order_id": client_order_id or venue_client_order_id(order_id),
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": Decimal("0.01"),
        "status": "FILLED",
        "filled_quantity": Decimal("0.01"),
        "filled_quote": Decimal(500),
        "fee": Decimal(0),
        "external": False,
        "created_at": 1,
        "updated_at": 1,
        **fields,
    }


def fill_row(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id(),
        "order_id": order["id"],
        "user_id": order["user_id"],
        "account_id": order["account_id"],
        "symbol": "BTCUSDT",
        "side": "BUY",
        "price": Decimal(50000),
        "quantity": Decimal("0.01"),
        "fee": Decimal(0),
        "fee_asset": "USDT",
        "liquidity": "TAKER",
        "ts": 1,
    }


def test_a_callers_client_order_id_stays_unique_in_its_account(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        user_id, account_id = user_account_rows(engine)
        _, other_account = user_account_rows(engine)
        with engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), order_row(user_id, account_id, "bot-1"))
            connection.execute(insert(TABLES["orders"]), order_row(user_id, other_account, "bot-1"))  # other account
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), order_row(user_id, account_id, "bot-1"))
    finally:
        engine.dispose()


def test_both_kinds_of_client_order_id_are_found_in_their_account_only(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        user_id, account_id = user_account_rows(engine)
        _, stranger_account = user_account_rows(engine)
        made, chosen = order_row(user_id, account_id), order_row(user_id, account_id, "bot-7")
        with engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), [made, chosen])
        with Session(engine) as session:
            found_made = by_client_order_id(session, account_id, made["client_order_id"])
            found_chosen = by_client_order_id(session, account_id, "bot-7")
            assert found_made is not None and found_made.id == made["id"]
            assert found_chosen is not None and found_chosen.id == chosen["id"]
            assert by_client_order_id(session, stranger_account, made["client_order_id"]) is None
            assert by_client_order_id(session, stranger_account, "bot-7") is None
            assert by_client_order_id(session, account_id, venue_client_order_id(new_id())) is None
        with engine.connect() as connection:  # only the chosen one is in the partial unique index
            indexed = connection.execute(text(f"SELECT id FROM orders WHERE {CALLERS_CLIENT_ORDER_ID}")).scalars()
            assert list(indexed) == [chosen["id"]]
    finally:
        engine.dispose()


async def test_intakes_driver_level_lookup_finds_both_kinds_in_their_account_only(database_url: str) -> None:
    db = Database(database_url)
    try:
        user_id, account_id = user_account_rows(db.engine)
        _, stranger_account = user_account_rows(db.engine)
        made, chosen = order_row(user_id, account_id), order_row(user_id, account_id, "bot-7")
        with db.engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), [made, chosen])

        async def found(account: str, client_order_id: str) -> str | None:
            row = await db.fetch_in(lambda reader: with_client_order_id(reader, account, client_order_id))
            return None if row is None else str(row.id)

        assert await found(account_id, made["client_order_id"]) == made["id"]
        assert await found(account_id, "bot-7") == chosen["id"]
        assert await found(stranger_account, made["client_order_id"]) is None
        assert await found(stranger_account, "bot-7") is None
        assert await found(account_id, venue_client_order_id(new_id())) is None
    finally:
        db.close()


async def test_a_batch_of_callers_ids_finds_each_in_its_account_only_whatever_its_size(database_url: str) -> None:
    db = Database(database_url)
    try:
        user_id, account_id = user_account_rows(db.engine)
        _, stranger_account = user_account_rows(db.engine)
        stored = [order_row(user_id, account_id, f"bot-{n}") for n in range(0, 140, 2)]  # even ids exist
        made = order_row(user_id, account_id)
        theirs = order_row(user_id, stranger_account, "bot-1")
        with db.engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), [*stored, made, theirs])
        by_client_order_id = {row["client_order_id"]: row["id"] for row in stored}

        # 1 to 140 ids: every size of statement, batches past the largest, and short ones padded with repeats.
        for count in (1, 2, 3, 4, 5, 16, 17, 64, 65, 140):
            asked = [f"bot-{n}" for n in range(count)]
            rows = await db.fetch_in(lambda r: with_callers_client_order_ids(r, account_id, asked))  # noqa: B023
            assert {cid: row.id for cid, row in rows.items()} == {
                cid: by_client_order_id[cid] for cid in asked if cid in by_client_order_id
            }

        # Not a made id (primary key lookups are with_client_order_id's), not another account's.
        assert (
            await db.fetch_in(lambda r: with_callers_client_order_ids(r, account_id, [made["client_order_id"]])) == {}
        )
        assert await db.fetch_in(lambda r: with_callers_client_order_ids(r, stranger_account, ["bot-2"])) == {}
    finally:
        db.close()


def test_a_callers_client_order_id_is_looked_up_through_the_partial_index(database_url: str) -> None:
    query = select(col(Order.id)).where(
        Order.account_id == "a", Order.client_order_id == "bot-1", text(CALLERS_CLIENT_ORDER_ID)
    )
    assert "uq_orders_account_client_order_id" in plan(database_url, query)
    # The statement intake runs at the driver (storage/repositories/orders.py, with_client_order_id).
    shown = plan(database_url, callers_client_order_id_query(), account_id="a", client_order_id="bot-1")
    assert "uq_orders_account_client_order_id" in shown
    # And intake's gathered lookups, several ids at once (with_callers_client_order_ids).
    ids = {f"c{n}": f"bot-{n}" for n in range(16)}
    shown = plan(database_url, callers_client_order_ids_read(16).statement, account_id="a", **ids)
    assert "uq_orders_account_client_order_id" in shown


@pytest.fixture
def scratch_url() -> Iterator[str]:
    """An empty database of the suite's backend, for migrating through revisions."""
    if BACKEND == "postgres":
        name = f"tradewind_scratch_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'scratch.db'}"


def migrate(engine: Engine, url: str, action: str, revision: str) -> None:
    config = alembic_config(url)
    with engine.connect() as connection, foreign_keys_checked_at_the_end(connection):
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def store(engine: Engine, table_name: str, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` into the table as the database has it at its current revision (reflected): columns it lacks
    are left out, required ones the rows lack (such as orders.locked_amount of the first schema) get a zero."""
    table = Table(table_name, MetaData(), autoload_with=engine)
    required = [c for c in table.columns if not c.nullable and c.server_default is None]
    with engine.begin() as connection:
        for row in rows:
            values = {key: str(value) if isinstance(value, Decimal) else value for key, value in row.items()}
            values = {key: value for key, value in values.items() if key in table.c}
            filler = {c.name: zero(c.type) for c in required if c.name not in values}
            connection.execute(insert(table), values | filler)


def zero(kind: TypeEngine[Any]) -> object:
    return False if isinstance(kind, Boolean) else 0 if isinstance(kind, Integer) else "0"


@pytest.mark.parametrize(
    "start",
    [
        "a71946bf3694",  # before the first migration that copies the orders table on SQLite (b3c8d1e2f4a5)
        BEFORE,
    ],
)
def test_migrating_a_database_with_orders_and_fills_keeps_them(scratch_url: str, start: str) -> None:
    engine = create_db_engine(scratch_url)
    try:
        migrate(engine, scratch_url, "upgrade", start)
        user_id, account_id = new_id(), new_id()
        store(
            engine, "users", [{"id": user_id, "email": f"{user_id}@example.com", "password_hash": "x", "created_at": 1}]
        )
        store(
            engine,
            "accounts",
            [{"id": account_id, "user_id": user_id, "venue": "PAPER", "label": "main", "created_at": 1}],
        )
        made, chosen = order_row(user_id, account_id), order_row(user_id, account_id, "bot-1")
        store(engine, "orders", [made, chosen])
        store(engine, "fills", [fill_row(made), fill_row(chosen)])

        upgrade_to_head(engine)  # the app's own path: SQLite copies the orders table, which fills point at
        with engine.connect() as connection:
            orders = connection.execute(text("SELECT id, client_order_id FROM orders ORDER BY id")).all()
            assert sorted(orders) == sorted([(made["id"], made["client_order_id"]), (chosen["id"], "bot-1")])
            fills = connection.execute(text("SELECT f.order_id FROM fills f JOIN orders o ON o.id = f.order_id"))
            assert len(fills.all()) == 2
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the app
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(TABLES["orders"]), order_row(user_id, account_id, "bot-1"))
        with pytest.raises(IntegrityError), engine.begin() as connection:  # foreign keys still enforced
            connection.execute(insert(TABLES["fills"]), fill_row({**made, "id": new_id()}))

        migrate(engine, scratch_url, "downgrade", start)
        migrate(engine, scratch_url, "upgrade", "head")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM fills")).scalar() == 2
        command.check(alembic_config(scratch_url))
    finally:
        engine.dispose()

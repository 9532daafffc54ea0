"""Orders, fills and positions. Reads that serve a user always filter by that user."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, RowMapping, Select, and_, bindparam, func, literal, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.driver_reads import DriverRead, DriverReader, ReadPlan
from storage.models import (
    CALLERS_CLIENT_ORDER_ID,
    MADE_CLIENT_ORDER_ID,
    MADE_CLIENT_ORDER_ID_PREFIX,
    OPEN_ORDER,
    OPEN_ORDER_STATUSES,
    Account,
    Fill,
    Order,
    Position,
)

OPEN_STATUSES = OPEN_ORDER_STATUSES

_ORDERS = Order.__table__  # type: ignore[attr-defined]
_ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
_POSITIONS = Position.__table__  # type: ignore[attr-defined]
_FILLS = Fill.__table__  # type: ignore[attr-defined]


def status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    """`orders.status IN statuses`. Open statuses carry the open-order indexes' own predicate, as literal SQL: only
    then can SQLite and PostgreSQL prove those partial indexes apply (storage/models.py)."""
    wanted = set(statuses)
    if not wanted or not wanted <= set(OPEN_ORDER_STATUSES):
        return _status_is_one_of(statuses)
    is_open = and_(text(OPEN_ORDER))
    return is_open if wanted == set(OPEN_ORDER_STATUSES) else and_(is_open, _status_is_one_of(statuses))


def _status_is_one_of(statuses: Sequence[str]) -> ColumnElement[bool]:
    # One bound value per status rather than one list (an "expanding" parameter, which SQLAlchemy renders per
    # execution): the driver-level reads render their SQL once (storage/driver_reads.py).
    return col(Order.status).in_([literal(status) for status in statuses])


def add(session: Session, order: Order, *, flush: bool = True) -> Order:
    """Add an order; `flush=False` lets many orders of one transaction go out as one multi-row INSERT."""
    session.add(order)
    if flush:
        session.flush()
    return order


def get(session: Session, order_id: str) -> Order | None:
    return session.get(Order, order_id)


def get_for_update(session: Session, order_id: str) -> Order | None:
    """The order, from the session's identity map when already loaded. Each order is changed by exactly one
    writer at a time (the engine or its venue worker; intake only sets cancel_requested_at, and the unit of work
    updates changed columns only), so no row lock is taken."""
    return session.get(Order, order_id)


def get_owned(session: Session, user_id: str, order_id: str) -> Order | None:
    order = session.get(Order, order_id)
    return order if order is not None and order.user_id == user_id else None


def by_client_order_id(session: Session, account_id: str, client_order_id: str) -> Order | None:
    """The account's order with this client order id. One Tradewind made ("tw" + the order's id) is found by primary
    key; one a caller chose through the partial unique index, whose predicate the query carries (storage/models.py)."""
    if MADE_CLIENT_ORDER_ID.fullmatch(client_order_id):
        order = session.get(Order, client_order_id[len(MADE_CLIENT_ORDER_ID_PREFIX) :])
        if order is not None and order.account_id == account_id and order.client_order_id == client_order_id:
            return order
    query = select(Order).where(
        Order.account_id == account_id, Order.client_order_id == client_order_id, text(CALLERS_CLIENT_ORDER_ID)
    )
    return session.exec(query).first()


def callers_client_order_id_query() -> Select[Any]:
    """An account's order with a client order id its caller chose (account_id, client_order_id bound by name): the
    partial unique index, whose predicate the query carries (tests/storage/test_client_order_ids.py checks the
    plan)."""
    return sa_select(_ORDERS).where(
        _ORDERS.c.account_id == bindparam("account_id"),
        _ORDERS.c.client_order_id == bindparam("client_order_id"),
        text(CALLERS_CLIENT_ORDER_ID),
    )


_BY_CALLERS_CLIENT_ORDER_ID = DriverRead(callers_client_order_id_query())
_BY_MADE_CLIENT_ORDER_ID = DriverRead(
    sa_select(_ORDERS).where(
        _ORDERS.c.id == bindparam("order_id"),
        _ORDERS.c.account_id == bindparam("account_id"),
        _ORDERS.c.client_order_id == bindparam("client_order_id"),
    )
)


def with_client_order_id(reader: DriverReader, account_id: str, client_order_id: str) -> Any | None:
    """`by_client_order_id` at the driver, as a row (an Order's attributes). Intake asks it for every order sent
    with a client order id, as careful bots send them: through a Session it tripled such an order's CPU."""
    if MADE_CLIENT_ORDER_ID.fullmatch(client_order_id):
        order_id = client_order_id[len(MADE_CLIENT_ORDER_ID_PREFIX) :]
        made = reader.rows(
            _BY_MADE_CLIENT_ORDER_ID, order_id=order_id, account_id=account_id, client_order_id=client_order_id
        )
        if made:
            return made[0]
    chosen = reader.rows(_BY_CALLERS_CLIENT_ORDER_ID, account_id=account_id, client_order_id=client_order_id)
    return chosen[0] if chosen else None


# Intake's gathered lookups (app/client_order_lookups.py): one statement per account for up to the largest size of
# caller-chosen client order ids, rendered once per size (a shorter batch repeats its first id), so the statements
# stay few and prepared.
CLIENT_ORDER_ID_BATCH_SIZES = (1, 4, 16, 64)


@cache
def callers_client_order_ids_read(size: int) -> DriverRead:
    wanted: list[Any] = [bindparam(f"c{n}") for n in range(size)]
    return DriverRead(
        sa_select(_ORDERS).where(
            _ORDERS.c.account_id == bindparam("account_id"),
            _ORDERS.c.client_order_id.in_(wanted),
            text(CALLERS_CLIENT_ORDER_ID),
        )
    )


def with_callers_client_order_ids(
    reader: DriverReader, account_id: str, client_order_ids: Sequence[str]
) -> dict[str, Any]:
    """The account's orders whose client order id, chosen by the caller, is one of `client_order_ids`, as rows by
    that id (ids of the made form, "tw" + an order id, are `with_client_order_id`'s)."""
    found: dict[str, Any] = {}
    largest = CLIENT_ORDER_ID_BATCH_SIZES[-1]
    for start in range(0, len(client_order_ids), largest):
        chunk = list(client_order_ids[start : start + largest])
        size = next(fits for fits in CLIENT_ORDER_ID_BATCH_SIZES if fits >= len(chunk))
        chunk += [chunk[0]] * (size - len(chunk))
        params = {f"c{n}": client_order_id for n, client_order_id in enumerate(chunk)}
        for row in reader.rows(callers_client_order_ids_read(size), account_id=account_id, **params):
            found[row.client_order_id] = row
    return found


def list_for_user(
    user_id: str,
    *,
    account_id: str | None = None,
    statuses: Sequence[str] | None = None,
    symbol: str | None = None,
    before: str | None = None,
    limit: int = 100,
) -> ReadPlan[list[Any]]:
    """A user's orders as rows (an Order's attributes), newest first, at the driver (the blotter and bots poll it):
    a plan for `Database.fetch_plan`. Ids are ULIDs, so `id < before` pages backwards in time. Orders are indexed
    by account only (storage/models.py): without an account_id, each of the user's accounts (one or a few) is read
    and the pages merged. (One query over all of them, `account_id IN (…)`, cannot walk an index in id order, so it
    would sort every order of the user.)"""
    read = user_orders_read(tuple(statuses) if statuses is not None else None, symbol is not None, before is not None)
    params = {"user_id": user_id, "symbol": symbol, "before": before, "limit": limit}
    if account_id is not None:
        return (yield read, {**params, "account_id": account_id})
    held = yield _LIVE_ACCOUNTS_WITH_ORDERS if _only_open(statuses) else _ACCOUNTS_WITH_ORDERS, {"user_id": user_id}
    rows: list[Any] = []
    for (account,) in held:
        rows += yield read, {**params, "account_id": account}
    return sorted(rows, key=lambda order: order.id, reverse=True)[:limit]


def _only_open(statuses: Sequence[str] | None) -> bool:
    return statuses is not None and set(statuses) <= set(OPEN_STATUSES)


def accounts_with_orders(*, live_only: bool) -> Select[Any]:
    """The user's accounts that hold any order, in one statement (an index probe per account): accounts created and
    deleted without trading cost a listing nothing. A deleted account holds no open order (deleting needs none), so
    a listing of open orders reads the live ones only (`live_only`)."""
    holds_orders = sa_select(_ORDERS.c.id).where(_ORDERS.c.account_id == _ACCOUNTS.c.id).exists()
    query = sa_select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.user_id == bindparam("user_id"), holds_orders)
    return query.where(_ACCOUNTS.c.deleted_at.is_(None)) if live_only else query


_ACCOUNTS_WITH_ORDERS = DriverRead(accounts_with_orders(live_only=False))
_LIVE_ACCOUNTS_WITH_ORDERS = DriverRead(accounts_with_orders(live_only=True))


@cache
def user_orders_read(statuses: tuple[str, ...] | None, by_symbol: bool, paged: bool) -> DriverRead:
    """`list_for_user`'s read of one account, one per shape of filters (a handful)."""
    return DriverRead(user_orders_query(statuses=statuses, by_symbol=by_symbol, paged=paged))


def user_orders_query(
    *, statuses: Sequence[str] | None = None, by_symbol: bool = False, paged: bool = False
) -> Select[Any]:
    """One account's orders of the user, newest first; bound by name: user_id, account_id, symbol (`by_symbol`),
    before (`paged`), limit. tests/storage/test_order_indexes.py checks which index each shape uses; the user_id
    term keeps a mismatched account from showing anything."""
    query = sa_select(_ORDERS).where(
        _ORDERS.c.user_id == bindparam("user_id"), _ORDERS.c.account_id == bindparam("account_id")
    )
    if statuses is not None:
        query = query.where(status_in(statuses))
    if by_symbol:
        query = query.where(_ORDERS.c.symbol == bindparam("symbol"))
    if paged:
        query = query.where(_ORDERS.c.id < bindparam("before"))
    return query.order_by(_ORDERS.c.id.desc()).limit(bindparam("limit", type_=Integer))


_OWNED_ORDER = DriverRead(
    sa_select(_ORDERS).where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.user_id == bindparam("user_id"))
)
_ORDER_FILLS = DriverRead(
    sa_select(_FILLS).where(_FILLS.c.order_id == bindparam("order_id")).order_by(_FILLS.c.ts, _FILLS.c.id)
)


def owned_with_fills(user_id: str, order_id: str) -> ReadPlan[tuple[Any, list[Any]] | None]:
    """The user's order and its fills, oldest first, as rows (an Order's and a Fill's attributes); None if the
    order is not the user's: a plan for `Database.fetch_plan`. Bots poll an order's status by id."""
    found = yield _OWNED_ORDER, {"order_id": order_id, "user_id": user_id}
    if not found:
        return None
    return found[0], (yield _ORDER_FILLS, {"order_id": order_id})


def open_for_account(session: Session, account_id: str, symbol: str | None = None) -> list[Order]:
    query = select(Order).where(Order.account_id == account_id, status_in(OPEN_STATUSES))
    if symbol is not None:
        query = query.where(Order.symbol == symbol)
    return list(session.exec(query.order_by(col(Order.id))))


def count_open_for_account(session: Session, account_id: str) -> int:
    return len(open_for_account(session, account_id))


def in_statuses_for_venue(session: Session, venue: str, statuses: Sequence[str]) -> list[Order]:
    """Recovery: every order of the venue's accounts in one of `statuses`, oldest first."""
    query = (
        select(Order)
        .join(Account, col(Account.id) == col(Order.account_id))
        .where(Account.venue == venue, status_in(statuses))
        .order_by(col(Order.id))
    )
    return list(session.exec(query))


def siblings(session: Session, order: Order) -> list[Order]:
    """The other legs of the order's OCO group."""
    if order.oco_group is None:
        return []
    query = select(Order).where(Order.oco_group == order.oco_group, Order.id != order.id)
    return list(session.exec(query))


def add_fill(session: Session, fill: Fill) -> Fill:
    session.add(fill)
    return fill


def fills_for_user(
    session: Session, user_id: str, *, account_id: str | None, symbol: str | None, limit: int
) -> list[Fill]:
    return list(session.exec(user_fills_query(user_id, account_id=account_id, symbol=symbol, limit=limit)))


def user_fills_query(user_id: str, *, account_id: str | None, symbol: str | None, limit: int) -> SelectOfScalar[Fill]:
    """Newest first by the fill's time: a walk of ix_fills_user_ts, not a sort of every fill of the user (only fills
    of the same millisecond are put in id order)."""
    query = select(Fill).where(Fill.user_id == user_id)
    if account_id is not None:
        query = query.where(Fill.account_id == account_id)
    if symbol is not None:
        query = query.where(Fill.symbol == symbol)
    return query.order_by(col(Fill.ts).desc(), col(Fill.id).desc()).limit(limit)


def fill_exists(session: Session, account_id: str, venue_trade_id: str) -> bool:
    query = select(Fill.id).where(Fill.account_id == account_id, Fill.venue_trade_id == venue_trade_id)
    return session.exec(query).first() is not None


def position_for_update(session: Session, account_id: str, symbol: str) -> Position:
    row = session.get(Position, (account_id, symbol))
    if row is None:
        row = Position(account_id=account_id, symbol=symbol)
        session.add(row)
        session.flush()
    return row


def positions(session: Session, account_id: str) -> list[Position]:
    query = select(Position).where(Position.account_id == account_id).order_by(col(Position.symbol))
    return list(session.exec(query))


def delete_positions(session: Session, account_id: str) -> None:
    for row in positions(session, account_id):
        session.delete(row)


def load(session: Session, order_ids: Sequence[str]) -> list[Order]:
    """Load many orders in one query (they stay in the session's identity map)."""
    return list(session.exec(select(Order).where(col(Order.id).in_(set(order_ids)))))


# ---- Core reads for the execution core (plain rows, no ORM objects) ---------------------------------------------


# An account's positions by symbol, polled by bots and every open page (storage/driver_reads.py):
# `await db.fetch(POSITIONS, account_id=…)`; rows have a Position's attributes.
POSITIONS = DriverRead(
    sa_select(_POSITIONS).where(_POSITIONS.c.account_id == bindparam("account_id")).order_by(_POSITIONS.c.symbol)
)


def rows_by_ids(session: Session, order_ids: Sequence[str]) -> list[RowMapping]:
    if not order_ids:
        return []
    query = sa_select(_ORDERS).where(_ORDERS.c.id.in_(set(order_ids)))
    return list(session.execute(query).mappings())


def rows_in_groups(session: Session, groups: Sequence[str]) -> list[RowMapping]:
    """Every leg of the OCO groups `groups`, in id (creation) order."""
    if not groups:
        return []
    query = sa_select(_ORDERS).where(_ORDERS.c.oco_group.in_(set(groups))).order_by(_ORDERS.c.id)
    return list(session.execute(query).mappings())


def rows_in_statuses_for_venue(session: Session, venue: str, statuses: Sequence[str]) -> list[RowMapping]:
    """Every order of the venue's accounts in one of `statuses`, oldest first."""
    query = (
        sa_select(_ORDERS)
        .join(_ACCOUNTS, _ACCOUNTS.c.id == _ORDERS.c.account_id)
        .where(_ACCOUNTS.c.venue == venue, status_in(statuses))
        .order_by(_ORDERS.c.id)
    )
    return list(session.execute(query).mappings())


def pending_ids_before(session: Session, venue: str, created_before: int) -> list[tuple[str, str]]:
    """(order id, account id) of the venue's PENDING orders created at or before `created_before` (ms): an age of 0
    includes the current millisecond (a sweep right after a lost command finds it however fast it runs)."""
    return _ids_where(session, venue, status_in(("PENDING",)), _ORDERS.c.created_at <= created_before)


def cancel_requests_before(session: Session, venue: str, requested_before: int) -> list[tuple[str, str]]:
    """(order id, account id) of the venue's open orders whose cancel was asked for at or before `requested_before`."""
    return _ids_where(session, venue, status_in(OPEN_STATUSES), _ORDERS.c.cancel_requested_at <= requested_before)


def _ids_where(session: Session, venue: str, *where: ColumnElement[bool]) -> list[tuple[str, str]]:
    query = sa_select(_ORDERS.c.id, _ORDERS.c.account_id).join(_ACCOUNTS, _ACCOUNTS.c.id == _ORDERS.c.account_id)
    query = query.where(_ACCOUNTS.c.venue == venue, *where).order_by(_ORDERS.c.id)
    return [(row.id, row.account_id) for row in session.execute(query)]


def position_rows(session: Session, account_ids: Sequence[str]) -> list[RowMapping]:
    if not account_ids:
        return []
    query = sa_select(_POSITIONS).where(_POSITIONS.c.account_id.in_(set(account_ids)))
    return list(session.execute(query).mappings())


def trade_ids_of(session: Session, order_id: str) -> set[str]:
    """The venue trade ids of an order's recorded fills (a venue may report a fill twice)."""
    query = sa_select(Fill.venue_trade_id).where(  # type: ignore[call-overload]
        Fill.order_id == order_id, col(Fill.venue_trade_id).is_not(None)
    )
    return {row[0] for row in session.execute(query)}


def open_counts(session: Session) -> list[tuple[str, str, int]]:
    """(account id, symbol, number of open orders that can rest: not MARKET) for every account with some."""
    query = (
        sa_select(_ORDERS.c.account_id, _ORDERS.c.symbol, func.count())
        .where(status_in(OPEN_STATUSES), _ORDERS.c.type != "MARKET")
        .group_by(_ORDERS.c.account_id, _ORDERS.c.symbol)
    )
    return [(r[0], r[1], int(r[2])) for r in session.execute(query)]

"""A statement's orders are an id range of the account's index, kept exact by created_at: an order made before
created_at was its id's millisecond may differ from it by a few, and still lands on the right side of a bound."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session
from ulid import ULID

from app.ids import new_id, now_ms
from storage.db import Database
from storage.models import Account, Order, User
from storage.repositories import statements

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
DAY = 86_400_000


def test_lowest_id_at_bounds_the_ids_made_at_a_millisecond() -> None:
    made = new_id()
    millis = ULID.from_str(made).milliseconds
    assert statements.lowest_id_at(millis) <= made < statements.lowest_id_at(millis + 1)
    assert statements.lowest_id_at(-5) == "0" * 26  # clamped to ULID's time range, not an error
    assert statements.lowest_id_at(1 << 60) == statements.lowest_id_at((1 << 48) - 1)


def test_the_range_is_exact_by_created_at_when_ids_are_off_by_a_few_ms(database_url: str) -> None:
    db = Database(database_url)
    user_id, account_id, other_account = new_id(), new_id(), new_id()
    # (created_at, the id's own millisecond): ids a few ms either side of created_at, as older rows may have.
    made = [(T0 - 1, T0 + 3), (T0, T0 - 4), (T0 + 5, T0 + 5), (T0 + DAY - 1, T0 + DAY + 2), (T0 + DAY, T0 + DAY - 3)]

    def store(session: Session) -> None:
        session.add(User(id=user_id, email=f"{user_id}@x.io", password_hash="h", created_at=now_ms()))
        session.flush()
        for account in (account_id, other_account):
            session.add(Account(id=account, user_id=user_id, venue="paper", label=account, created_at=now_ms()))
        session.flush()
        for n, (created_at, id_millis) in enumerate(made):
            for account, randomness in ((account_id, n), (other_account, 100 + n)):  # the same times in another
                order_id = str(ULID.from_bytes(id_millis.to_bytes(6, "big") + randomness.to_bytes(10, "big")))
                session.add(order(order_id, user_id, account, created_at))

    db.run_sync(store)
    try:
        count = db.run_sync(lambda s: statements.count_orders(s, user_id, account_id, T0, T0 + DAY))
        first = db.run_sync(lambda s: statements.orders_page(s, user_id, account_id, T0, T0 + DAY, None, 2))
        after = (first[-1].created_at, first[-1].id)
        rest = db.run_sync(lambda s: statements.orders_page(s, user_id, account_id, T0, T0 + DAY, after, 2))
        stranger = db.run_sync(lambda s: statements.count_orders(s, new_id(), account_id, T0, T0 + DAY))
    finally:
        db.close()
    assert count == 3
    assert [o.created_at for o in first + rest] == [T0, T0 + 5, T0 + DAY - 1]  # oldest first, by id
    assert {o.account_id for o in first + rest} == {account_id}
    assert stranger == 0


def order(order_id: str, user_id: str, account_id: str, created_at: int) -> Order:
    return Order(
        id=order_id, user_id=user_id, account_id=account_id, client_order_id=f"c{order_id}", symbol="BTCUSDT",
        side="BUY", type="MARKET", quantity=Decimal("0.1"), status="FILLED", created_at=created_at,
        updated_at=created_at,
    )  # fmt: skip

"""The account listing's driver-level read: the same accounts, columns and order the ORM query gives, and only the
user's."""

from __future__ import annotations

from sqlmodel import Session

from app.ids import new_id
from storage.db import Database
from storage.models import Account, User
from storage.repositories import accounts

T0 = 1_764_547_200_000


async def test_the_listing_is_the_users_live_accounts_oldest_first_as_the_orm_reads_them(database_url: str) -> None:
    db = Database(database_url)
    user_id, stranger = new_id(), new_id()
    # Two accounts made in one millisecond: the id breaks the tie. One deleted: never listed.
    made = [
        ("paper", "B", T0 + 5, None),
        ("paper", "A", T0, None),
        ("binance_testnet", "K", T0 + 5, None),
        ("paper", "gone", T0 + 1, T0 + 9),
    ]

    def store(session: Session) -> None:
        for owner in (user_id, stranger):
            session.add(User(id=owner, email=f"{owner}@x.io", password_hash="h", created_at=T0))
        session.flush()
        for venue, label, created_at, deleted_at in made:
            session.add(
                Account(
                    id=new_id(),
                    user_id=user_id,
                    venue=venue,
                    label=label,
                    created_at=created_at,
                    deleted_at=deleted_at,
                    api_key_hint="abcd...wxyz" if venue != "paper" else None,
                    api_key_enc="sealed" if venue != "paper" else None,
                    key_id="k1" if venue != "paper" else None,
                )
            )
        session.add(Account(id=new_id(), user_id=stranger, venue="paper", label="theirs", created_at=T0 - 1))

    db.run_sync(store)
    try:
        rows = await db.fetch(accounts.LISTING, user_id=user_id)
        orm = db.run_sync(lambda s: accounts.list_for_user(s, user_id))
        assert [r.label for r in rows] == ["A", "B", "K"]
        columns = ("id", "user_id", "venue", "label", "created_at", "api_key_hint", "key_id", "deleted_at")
        assert [tuple(getattr(r, c) for c in columns) for r in rows] == [
            tuple(getattr(a, c) for c in columns) for a in orm
        ]
        assert await db.fetch(accounts.LISTING, user_id=new_id()) == []
    finally:
        await db.aclose()

"""Webhook delivery records: only the newest `keep` per webhook stay; a deleted webhook gets no new records."""

from __future__ import annotations

from sqlmodel import Session

from app.ids import new_id, now_ms
from storage.db import Database
from storage.models import User, Webhook, WebhookDelivery
from storage.repositories import webhooks as repo


def _webhook(db: Database) -> Webhook:
    user = User(id=new_id(), email=f"{new_id()}@example.com", password_hash="x", created_at=now_ms())
    hook = Webhook(
        id=new_id(), user_id=user.id, url="https://h.example/", events="fill", secret_enc="x", key_id="k", created_at=1
    )

    def store(session: Session) -> Webhook:
        session.add(user)
        session.flush()
        return repo.add(session, hook)

    return db.run_sync(store)


def _record(hook: Webhook, n: int) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id(), webhook_id=hook.id, user_id=hook.user_id, attempt=n, outcome="DELIVERED", created_at=now_ms()
    )


def test_only_the_newest_records_are_kept(database_url: str) -> None:
    db = Database(database_url)
    try:
        hook, other = _webhook(db), _webhook(db)
        db.run_sync(lambda s: repo.record(s, _record(other, 0), keep=3))
        for n in range(1, 6):
            row = _record(hook, n)
            assert db.run_sync(lambda s, row=row: repo.record(s, row, keep=3))
        kept = db.run_sync(lambda s: repo.recent_deliveries(s, hook.id, 10))
        assert [r.attempt for r in kept] == [5, 4, 3]
        assert len(db.run_sync(lambda s: repo.recent_deliveries(s, other.id, 10))) == 1  # other webhooks untouched
        assert db.run_sync(lambda s: repo.delete_owned(s, hook.user_id, hook.id))
        assert not db.run_sync(lambda s: repo.record(s, _record(hook, 6), keep=3))
        assert db.run_sync(lambda s: repo.recent_deliveries(s, hook.id, 10)) == []
    finally:
        db.close()

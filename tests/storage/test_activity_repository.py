"""The activity log stays bounded per user, and failed logins cannot push real account actions out."""

from __future__ import annotations

import pytest

from app.activity import ActivityKind, ActivityLog
from app.services import Services
from storage.repositories import activity as activity_repo


async def test_each_user_keeps_the_newest_records_and_failed_logins_have_their_own_allowance(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity_repo, "KEEP_OTHERS", 3)
    monkeypatch.setattr(activity_repo, "KEEP_FAILED_LOGINS", 2)
    alice = await services.auth.register("alice-log@example.com", "correct horse battery")
    bob = await services.auth.register("bob-log@example.com", "correct horse battery")
    log = ActivityLog(services.db)
    for n in range(4):
        await log.record(alice.id, ActivityKind.PAPER_RESET, detail={"n": str(n)})
    for n in range(10):
        await log.record(alice.id, ActivityKind.LOGIN_FAILED, address=f"192.0.2.{n}")

    kept = await log.recent(alice.id, limit=100)
    assert [(r.kind, r.detail.get("n"), r.address) for r in kept] == [
        ("LOGIN_FAILED", None, "192.0.2.9"),
        ("LOGIN_FAILED", None, "192.0.2.8"),
        ("PAPER_RESET", "3", None),
        ("PAPER_RESET", "2", None),
        ("PAPER_RESET", "1", None),
    ]
    assert [r.kind for r in await log.recent(bob.id)] == ["REGISTERED"]  # another user's records are untouched

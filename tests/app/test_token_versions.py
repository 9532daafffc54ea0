"""The in-memory token versions (app/token_versions.py): one read per user, updates, invalidation, bounds."""

from __future__ import annotations

import asyncio

from app.token_versions import TokenVersions, UserVersion


class FakeUsers:
    """Stands in for the database: a version per user, a count of reads, and a gate to hold a read open."""

    def __init__(self) -> None:
        self.versions = {"u1": 0, "u2": 0}
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def load(self, user_id: str) -> UserVersion | None:
        self.reads += 1
        version = self.versions.get(user_id)
        if self.gate is not None:
            await self.gate.wait()
        return UserVersion(f"{user_id}@example.com", version) if version is not None else None


async def test_one_read_serves_every_later_and_concurrent_use() -> None:
    users = FakeUsers()
    versions = TokenVersions(users.load)
    results = await asyncio.gather(*(versions.get("u1") for _ in range(50)))
    for _ in range(50):
        await versions.get("u1")
    assert users.reads == 1
    assert {r for r in results} == {UserVersion("u1@example.com", 0)}
    assert await versions.get("nobody") is None


async def test_a_change_updates_the_entry_and_tells_listeners() -> None:
    users = FakeUsers()
    versions = TokenVersions(users.load)
    await versions.get("u1")
    heard: list[tuple[str, int | None]] = []
    everyone: list[str] = []
    unsubscribe = versions.subscribe("u1", lambda user_id, version: heard.append((user_id, version)))
    versions.subscribe_all(lambda user_id, _version: everyone.append(user_id))
    versions.changed("u1", 1)
    versions.changed("u2", 4)
    assert (await versions.get("u1")) == UserVersion("u1@example.com", 1)
    assert heard == [("u1", 1)] and everyone == ["u1", "u2"]
    unsubscribe()
    versions.changed("u1", 2)
    assert heard == [("u1", 1)]
    assert users.reads == 1


async def test_invalidate_forgets_the_entry_and_asks_listeners_to_recheck() -> None:
    users = FakeUsers()
    versions = TokenVersions(users.load)
    await versions.get("u1")
    heard: list[int | None] = []
    versions.subscribe("u1", lambda _user_id, version: heard.append(version))
    users.versions["u1"] = 7  # changed elsewhere (another replica)
    versions.invalidate("u1")
    assert heard == [None]
    assert (await versions.get("u1")).token_version == 7  # type: ignore[union-attr]
    assert users.reads == 2


async def test_a_change_during_a_read_is_not_undone_by_the_older_result() -> None:
    users = FakeUsers()
    users.gate = asyncio.Event()
    versions = TokenVersions(users.load)
    reading = asyncio.create_task(versions.get("u1"))
    await asyncio.sleep(0)  # the read has started and returns version 0 ...
    versions.changed("u1", 1)  # ... while the version is bumped
    users.gate.set()
    assert (await reading).token_version == 1  # type: ignore[union-attr]
    assert (await versions.get("u1")).token_version == 1  # type: ignore[union-attr]


async def test_the_cache_is_bounded() -> None:
    users = FakeUsers()
    users.versions.update({f"x{n}": 0 for n in range(30)})
    versions = TokenVersions(users.load, capacity=10)
    for n in range(30):
        await versions.get(f"x{n}")
    assert len(versions) == 10
    await versions.get("x29")
    assert users.reads == 30  # the newest are still cached
    await versions.get("x0")
    assert users.reads == 31  # the oldest was evicted


async def test_a_broken_listener_does_not_stop_the_others() -> None:
    versions = TokenVersions(FakeUsers().load)
    heard: list[int | None] = []

    def broken(_user_id: str, _version: int | None) -> None:
        raise RuntimeError("boom")

    versions.subscribe("u1", broken)
    versions.subscribe("u1", lambda _user_id, version: heard.append(version))
    versions.changed("u1", 3)
    assert heard == [3]

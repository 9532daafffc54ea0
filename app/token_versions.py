"""Token versions in memory: authentication without a database round trip per request.

Every token and page session carries the user's `token_version` from when it was issued; "log out everywhere" and
a password change bump the stored version, which ends everything older. `TokenVersions` keeps user id ->
(email, token_version) for the most recently used users (bounded, least recently used evicted), filled from the
database on first use and kept current by the process that changes a version (`changed`). Listeners (open API
sockets, open pages) hear about every change, so they can end at once instead of polling.

The interface is what a multi-replica set-up needs (DESIGN.md §11): a change made here is handed to `relay` (the
Redis fan-out, app/fanout.py, when REDIS_URL is set); a replica that receives a version change from elsewhere calls
`changed(user_id, version, remote=True)` (not relayed again), or `reload_all()` when it may have missed some (its
Redis connection was lost); both notify the local listeners. Versions only ever grow, so a late database read never
replaces a newer version that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class UserVersion:
    email: str
    token_version: int


Loader = Callable[[str], Awaitable[UserVersion | None]]
# Called with the user id and the new version, or None when the version is unknown (invalidated): re-check.
VersionListener = Callable[[str, int | None], None]
Relay = Callable[[str, int], None]


class TokenVersions:
    """Bounded cache of user id -> UserVersion with change listeners."""

    def __init__(self, load: Loader, capacity: int = DEFAULT_CAPACITY) -> None:
        self._load = load
        self.capacity = capacity
        self._entries: OrderedDict[str, UserVersion] = OrderedDict()
        self._loading: dict[str, asyncio.Future[UserVersion | None]] = {}
        self._listeners: dict[str, set[VersionListener]] = {}
        self._global: set[VersionListener] = set()
        self._floors: dict[str, int] = {}
        self.loads = 0  # database reads made (tests prove requests do not read)
        self.relay: Relay | None = None  # tells the other replicas (app/fanout.py)

    async def get(self, user_id: str) -> UserVersion | None:
        """The user's email and current token version (None for an unknown user); reads the database only when
        the user is not cached, and one read serves every concurrent caller."""
        entry = self._entries.get(user_id)
        if entry is not None:
            self._entries.move_to_end(user_id)
            return entry
        pending = self._loading.get(user_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[user_id] = pending
            try:
                self.loads += 1
                loaded = await self._load(user_id)
            except BaseException as exc:
                self._loading.pop(user_id, None)
                self._floors.pop(user_id, None)
                pending.set_exception(exc)
                pending.exception()  # retrieved: no "never retrieved" warning when nobody else waited
                raise
            self._loading.pop(user_id, None)
            floor = self._floors.pop(user_id, None)
            if loaded is not None and floor is not None and floor > loaded.token_version:
                loaded = UserVersion(loaded.email, floor)
            if loaded is not None:
                loaded = self._store(user_id, loaded)
            pending.set_result(loaded)
            return loaded
        return await asyncio.shield(pending)

    def changed(self, user_id: str, version: int, *, remote: bool = False) -> None:
        """The user's version is now `version`: bumped here (told to the other replicas through `relay`) or,
        with `remote=True`, announced by another replica."""
        current = self._entries.get(user_id)
        if current is not None:
            self._store(user_id, UserVersion(current.email, version))
        if user_id in self._loading:  # a read in flight may return the older version: it must not win
            self._floors[user_id] = max(version, self._floors.get(user_id, version))
        self._notify(user_id, version)
        if not remote and self.relay is not None:
            try:
                self.relay(user_id, version)
            except Exception:  # the local change stands whatever the fan-out does
                log.exception("token version relay failed")

    def invalidate(self, user_id: str) -> None:
        """Forget the user's entry (the next use reads the database) and tell listeners to re-check."""
        self._entries.pop(user_id, None)
        self._notify(user_id, None)

    async def reload_all(self) -> None:
        """Read every cached user's version again and announce the ones that grew: changes made on another replica
        may have been missed (the Redis connection was lost). One database read per user, in the background."""
        stale = dict(self._entries)
        self._entries.clear()
        for user_id, old in stale.items():
            fresh = await self.get(user_id)
            if fresh is not None and fresh.token_version > old.token_version:
                self._notify(user_id, fresh.token_version)

    def subscribe(self, user_id: str, listener: VersionListener) -> Callable[[], None]:
        """Hear about the user's version changes; returns the unsubscribe function."""
        self._listeners.setdefault(user_id, set()).add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(user_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[user_id]

        return unsubscribe

    def subscribe_all(self, listener: VersionListener) -> Callable[[], None]:
        """Hear about every user's version changes (the page feed uses it); returns the unsubscribe function."""
        self._global.add(listener)
        return lambda: self._global.discard(listener)

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, user_id: str, entry: UserVersion) -> UserVersion:
        current = self._entries.get(user_id)
        if current is not None and current.token_version > entry.token_version:
            entry = current  # a change arrived while the database read was in flight: keep the newer one
        self._entries[user_id] = entry
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def _notify(self, user_id: str, version: int | None) -> None:
        for listener in [*self._listeners.get(user_id, ()), *self._global]:
            try:
                listener(user_id, version)
            except Exception:  # one broken listener must not keep the others (or the caller) from going on
                log.exception("token version listener failed")

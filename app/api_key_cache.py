"""Verified API keys in memory: a bot's request costs a SHA-256 and a dict lookup, not a database read.

`ApiKeyCache` keeps key hash -> VerifiedKey for the most recently used keys (bounded, least recently used evicted),
filled from the database on first use (one read serves every concurrent request with the same key). A revoke in this
process calls `revoked(key_id)` right after its commit: the entry goes, and listeners (open sockets of that key)
hear it and close at once. A database read that was in flight while the key was revoked cannot put it back: the ids
of recently revoked keys are remembered.

Several replicas (DESIGN.md §11): a revoke must reach every replica — `revoked(key_id)` hands the key id to
`relay` (the Redis fan-out, app/fanout.py, when REDIS_URL is set) and each other replica calls
`revoked(key_id, remote=True)` on receipt. A replica that may have missed some (its Redis connection was lost)
calls `reload_all()`: every cached key is read again, and one found revoked is revoked here too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000
REMEMBERED_REVOCATIONS = 10_000

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A live key as requests need it: whose it is, what it may do and from where."""

    key_id: str
    user_id: str
    email: str
    scopes: frozenset[str]
    networks: tuple[IpNetwork, ...]  # empty: any client address

    def allows(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # "unknown" (no peer address) or a garbage forwarded value
            return False
        return any(ip in network for network in self.networks)


Loader = Callable[[str], Awaitable[VerifiedKey | None]]
RevokeListener = Callable[[], None]
Relay = Callable[[str], None]


class ApiKeyCache:
    """Bounded cache of key hash -> VerifiedKey, with revocation listeners per key id."""

    def __init__(self, load: Loader, capacity: int = DEFAULT_CAPACITY) -> None:
        self._load = load
        self.capacity = capacity
        self._entries: OrderedDict[str, VerifiedKey] = OrderedDict()
        self._hash_of: dict[str, str] = {}  # key id -> hash, to evict on revoke
        self._loading: dict[str, asyncio.Future[VerifiedKey | None]] = {}
        self._revoked: OrderedDict[str, None] = OrderedDict()
        self._listeners: dict[str, set[RevokeListener]] = {}
        self.loads = 0  # database reads made (tests prove repeated requests do not read)
        self.relay: Relay | None = None  # tells the other replicas (app/fanout.py)

    def cached(self, key_hash: str) -> VerifiedKey | None:
        """The verified key if it is in memory (no await: the hot path)."""
        entry = self._entries.get(key_hash)
        if entry is not None:
            self._entries.move_to_end(key_hash)
        return entry

    async def get(self, key_hash: str) -> VerifiedKey | None:
        """The live key with this hash (None: unknown or revoked); reads the database only on a miss."""
        entry = self.cached(key_hash)
        if entry is not None:
            return entry
        pending = self._loading.get(key_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._fill(key_hash))
            self._loading[key_hash] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key_hash, None))
        return await asyncio.shield(pending)

    async def _fill(self, key_hash: str) -> VerifiedKey | None:
        self.loads += 1
        loaded = await self._load(key_hash)
        if loaded is None or loaded.key_id in self._revoked:  # revoked while the read was in flight
            return None
        self._entries[key_hash] = loaded
        self._hash_of[loaded.key_id] = key_hash
        while len(self._entries) > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self._hash_of.pop(evicted.key_id, None)
        return loaded

    def revoked(self, key_id: str, *, remote: bool = False) -> None:
        """The key was revoked: here (told to the other replicas through `relay`) or, with `remote=True`, on
        another replica. Forget it and tell its listeners."""
        key_hash = self._hash_of.pop(key_id, None)
        if key_hash is not None:
            self._entries.pop(key_hash, None)
        self._revoked[key_id] = None
        while len(self._revoked) > REMEMBERED_REVOCATIONS:
            self._revoked.popitem(last=False)
        for listener in list(self._listeners.get(key_id, ())):
            try:
                listener()
            except Exception:  # one broken listener must not keep the others from closing
                log.exception("api key revocation listener failed")
        if not remote and self.relay is not None:
            try:
                self.relay(key_id)
            except Exception:  # the local revocation stands whatever the fan-out does
                log.exception("api key revocation relay failed")

    async def reload_all(self) -> None:
        """Read every cached key again; one that is gone is revoked here (its sockets close): revocations made on
        another replica may have been missed (the Redis connection was lost). In the background."""
        stale = dict(self._entries)
        self._entries.clear()
        self._hash_of.clear()
        for key_hash, key in stale.items():
            if await self.get(key_hash) is None:
                self.revoked(key.key_id, remote=True)

    def is_revoked(self, key_id: str) -> bool:
        return key_id in self._revoked

    def subscribe(self, key_id: str, listener: RevokeListener) -> Callable[[], None]:
        """Hear when the key is revoked; returns the unsubscribe function."""
        self._listeners.setdefault(key_id, set()).add(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(key_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[key_id]

        return unsubscribe

    def __len__(self) -> int:
        return len(self._entries)

"""API keys for bots: created (shown once), listed, revoked; verified on every request from memory.

A key is `tw_` + 43 URL-safe characters (256 random bits from `secrets`). Only its SHA-256 is stored. A plain hash
is enough here, unlike for passwords: argon2 exists to make guessing a *low-entropy* secret slow, but nobody can
guess 256 random bits, so a fast hash loses nothing — and argon2's 64 MiB and tens of milliseconds per request would
be a denial of service on the order path. An HMAC with a server secret would add nothing against guessing and would
make every key die with that secret; so SHA-256 of the key, looked up by its unique index.

Scopes: `read` (GET routes, the WebSocket) and `trade` (also places/cancels orders, adds/removes exchange accounts,
resets the paper account; it includes `read`). Keys never manage keys or the password and cannot log out everywhere:
those need a login token (403 LOGIN_REQUIRED), so a leaked key cannot entrench itself. A key is not ended by a
password change or "log out everywhere" (bots keep running); revoke it explicitly.

Throttles (in memory, per process): KEY_CREATIONS_PER_HOUR creations and KEY_REVOCATIONS_PER_HOUR revocations per
user; FAILED_USES failed key presentations (unknown, revoked or malformed keys) per client address per 15 minutes,
then 429 for keys not already verified — this also bounds the database reads that unknown keys can cause. Each
key may send API_KEY_REQUESTS_PER_SECOND requests per second on average (bursts of twice that), then 429
TOO_MANY_REQUESTS with Retry-After: a runaway bot cannot take the server from everyone else.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session

from app.activity import ActivityKind, record_in
from app.api_key_cache import ApiKeyCache, IpNetwork, VerifiedKey
from app.auth import AuthenticatedUser
from app.errors import Conflict, Forbidden, NotAuthenticated, NotFound, Throttled, ValidationFailed
from app.ids import new_id, now_ms
from app.throttle import LOGIN_WINDOW, RequestRate, SlidingWindow
from storage.db import Database
from storage.models import ApiKey
from storage.repositories import api_keys, users

log = logging.getLogger(__name__)

KEY_PREFIX = "tw_"
KEY_LENGTH = len(KEY_PREFIX) + 43  # secrets.token_urlsafe(32)
SHOWN_PREFIX = len(KEY_PREFIX) + 8
READ, TRADE = "read", "trade"
SCOPES = (READ, TRADE)
MAX_KEYS_PER_USER = 20
MAX_LABEL = 64
MAX_ADDRESSES = 20
KEY_CREATIONS_PER_HOUR = 10
KEY_REVOCATIONS_PER_HOUR = 60
FAILED_USES = 20
TOUCH_EVERY_MS = 60_000  # last_used_at is written at most once a minute per key, never on every request
TOUCHED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """What the owner sees of a key: never the key or its hash."""

    id: str
    label: str
    prefix: str
    scopes: tuple[str, ...]
    allowed_addresses: tuple[str, ...]
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    view: ApiKeyView
    key: str  # the only time the key is seen


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def looks_like_key(token: str) -> bool:
    """Whether a bearer credential is meant as an API key (JWTs start with `eyJ`)."""
    return token.startswith(KEY_PREFIX)


class ApiKeyService:
    def __init__(self, db: Database, requests_per_second: float = 50.0) -> None:
        self.db = db
        self.requests = RequestRate(requests_per_second, 2 * requests_per_second)
        self.cache = ApiKeyCache(self._load)
        self.creations = SlidingWindow(KEY_CREATIONS_PER_HOUR, 3600.0)
        self.revocations = SlidingWindow(KEY_REVOCATIONS_PER_HOUR, 3600.0)
        self.failures = SlidingWindow(FAILED_USES, LOGIN_WINDOW)
        self._touched: dict[str, int] = {}  # key id -> last use written (ms)
        self._touches: set[asyncio.Task[None]] = set()

    # ---- owner's actions (need a login: app/api/deps.py) -------------------------------------------------------

    async def create(
        self,
        user_id: str,
        label: str,
        scopes: Sequence[str],
        allowed_addresses: Sequence[str] = (),
        address: str | None = None,
    ) -> CreatedKey:
        """A new key for the user (at most MAX_KEYS_PER_USER live keys: 409 TOO_MANY_API_KEYS)."""
        label = _clean_label(label)
        scope_set = _clean_scopes(scopes)
        networks = _clean_networks(allowed_addresses)
        _count(self.creations, user_id, "Too many API keys created; try again later.")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            id=new_id(),
            user_id=user_id,
            label=label,
            prefix=key[:SHOWN_PREFIX],
            key_hash=hash_key(key),
            scopes=",".join(scope_set),
            allowed_addresses=",".join(networks) or None,
            created_at=now_ms(),
        )

        def store(session: Session) -> None:
            if api_keys.count_live_locked(session, user_id) >= MAX_KEYS_PER_USER:
                raise Conflict(
                    f"You already hold {MAX_KEYS_PER_USER} API keys; revoke one first.", code="TOO_MANY_API_KEYS"
                )
            api_keys.add(session, row)
            detail = {"key_id": row.id, "label": label, "prefix": row.prefix, "scopes": row.scopes}
            record_in(session, user_id, ActivityKind.API_KEY_CREATED, address=address, detail=detail)

        await self.db.write(store)
        log.info("user %s created API key %s (%s, scopes %s)", user_id, row.id, row.prefix, row.scopes)
        return CreatedKey(_view(row), key)

    async def list_for_user(self, user_id: str) -> list[ApiKeyView]:
        rows = await self.db.read(lambda s: api_keys.list_live(s, user_id))
        return [_view(row, self._touched.get(row.id)) for row in rows]

    async def revoke(self, user_id: str, key_id: str, address: str | None = None) -> None:
        """Revoke one of the user's keys: from this moment it authenticates nothing and its sockets close.
        404 API_KEY_NOT_FOUND for a key that is not theirs or already revoked."""
        _count(self.revocations, user_id, "Too many API keys revoked; try again later.")

        def store(session: Session) -> ApiKey:
            row = api_keys.revoke(session, user_id, key_id, now_ms())
            if row is None:
                raise NotFound("API key not found.", code="API_KEY_NOT_FOUND")
            detail = {"key_id": row.id, "label": row.label, "prefix": row.prefix}
            record_in(session, user_id, ActivityKind.API_KEY_REVOKED, address=address, detail=detail)
            return row

        row = await self.db.write(store)
        self.cache.revoked(key_id)  # after the commit: a reload can only see it revoked
        self._touched.pop(key_id, None)
        log.info("user %s revoked API key %s (%s)", user_id, row.id, row.prefix)

    async def close(self) -> None:
        """Let background `last_used_at` writes finish (before the database closes)."""
        if self._touches:
            await asyncio.gather(*self._touches, return_exceptions=True)

    # ---- requests -------------------------------------------------------------------------------------------

    async def authenticate(self, key: str, address: str) -> AuthenticatedUser:
        """The key's user, carrying its scopes. 401 INVALID_API_KEY for an unknown, revoked or malformed key,
        403 ADDRESS_NOT_ALLOWED outside the key's allowed addresses, 429 TOO_MANY_ATTEMPTS after FAILED_USES
        failures from this address. A verified key costs no database read."""
        verified = await self.verify(key, address)
        return AuthenticatedUser(verified.user_id, verified.email, verified.scopes, verified.key_id)

    async def verify(self, key: str, address: str) -> VerifiedKey:
        """Like `authenticate`, returning the cached key (the WebSocket watches its revocation)."""
        key_hash = hash_key(key) if len(key) == KEY_LENGTH and key.isascii() else ""
        verified = self.cache.cached(key_hash) if key_hash else None
        if verified is None:
            wait = self.failures.retry_after(address)
            if wait is not None:
                raise Throttled(
                    "Too many invalid API keys; try again later.", retry_after=wait, code="TOO_MANY_ATTEMPTS"
                )
            verified = await self.cache.get(key_hash) if key_hash else None
            if verified is None:
                self.failures.hit(address)
                log.warning("invalid API key %s... from %s", key[:SHOWN_PREFIX], address)
                raise NotAuthenticated("The API key is not valid (unknown or revoked).", code="INVALID_API_KEY")
            log.info("API key %s of user %s in use from %s", verified.key_id, verified.user_id, address)
        if not verified.allows(address):
            log.warning("API key %s used from %s, outside its allowed addresses", verified.key_id, address)
            raise Forbidden("This API key may not be used from this address.", code="ADDRESS_NOT_ALLOWED")
        slow_down = self.requests.take(verified.key_id)
        if slow_down is not None:
            raise Throttled(
                "Too many requests with this API key; slow down.",
                retry_after=math.ceil(slow_down),
                code="TOO_MANY_REQUESTS",
            )
        self._touch(verified.key_id)
        return verified

    def _touch(self, key_id: str) -> None:
        """Write last_used_at in the background, at most once per TOUCH_EVERY_MS per key."""
        now = now_ms()
        if now - self._touched.get(key_id, 0) < TOUCH_EVERY_MS:
            return
        if len(self._touched) >= TOUCHED_KEPT:  # bounded: forgetting only costs one early write per key
            self._touched.clear()
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id, now))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _write_touch(self, key_id: str, at: int) -> None:
        try:
            await self.db.write(lambda s: api_keys.touch(s, key_id, at))
        except Exception:  # a lost "last used" stamp must never fail the request that caused it
            log.exception("could not record the use of API key %s", key_id)

    async def _load(self, key_hash: str) -> VerifiedKey | None:
        def read(session: Session) -> VerifiedKey | None:
            row = api_keys.by_hash(session, key_hash)
            user = users.get(session, row.user_id) if row else None
            if row is None or user is None:
                return None
            return VerifiedKey(row.id, row.user_id, user.email, frozenset(row.scopes.split(",")), _networks(row))

        return await self.db.read(read)


def _view(row: ApiKey, touched: int | None = None) -> ApiKeyView:
    last_used = max(filter(None, (row.last_used_at, touched)), default=None)
    addresses = tuple(row.allowed_addresses.split(",")) if row.allowed_addresses else ()
    return ApiKeyView(row.id, row.label, row.prefix, tuple(row.scopes.split(",")), addresses, row.created_at, last_used)


def _networks(row: ApiKey) -> tuple[IpNetwork, ...]:
    if not row.allowed_addresses:
        return ()
    return tuple(ipaddress.ip_network(value, strict=False) for value in row.allowed_addresses.split(","))


def _count(window: SlidingWindow, user_id: str, message: str) -> None:
    wait = window.retry_after(user_id)
    if wait is not None:
        raise Throttled(message, retry_after=wait, code="TOO_MANY_KEY_CHANGES")
    window.hit(user_id)


def _clean_label(label: str) -> str:
    label = " ".join(str(label).split())
    if not label or len(label) > MAX_LABEL or not label.isprintable():
        raise ValidationFailed(f"label must be 1-{MAX_LABEL} printable characters", field="label")
    return label


def _clean_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    wanted = {str(scope).strip().lower() for scope in scopes}
    if not wanted or not wanted <= set(SCOPES):
        raise ValidationFailed("scopes must be a non-empty list of 'read' and 'trade'", field="scopes")
    wanted.add(READ)  # trading includes reading: a bot that trades must see its orders
    return tuple(scope for scope in SCOPES if scope in wanted)


def _clean_networks(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_ADDRESSES:
        raise ValidationFailed(f"at most {MAX_ADDRESSES} allowed addresses", field="allowed_addresses")
    networks: list[str] = []
    for value in values:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise ValidationFailed(
                f"allowed_addresses: {str(value)[:50]!r} is not an IP address or network (CIDR)",
                field="allowed_addresses",
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    return networks

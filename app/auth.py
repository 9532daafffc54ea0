"""Users and authentication: argon2 passwords (passlib), JWT for the API, login and sign-up throttling
(app/throttle.py), token versions cached in memory (app/token_versions.py)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from email_validator import EmailNotValidError, validate_email
from passlib.context import CryptContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.accounts import create_paper_account
from app.activity import ActivityKind, ActivityLog, record_in
from app.config import Settings
from app.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed
from app.ids import new_id, now_ms
from app.throttle import LoginThrottle, RegisterThrottle
from app.token_versions import TokenVersions, UserVersion
from storage.db import Database
from storage.models import User
from storage.repositories import users

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_EMAIL = 254
JWT_ALGORITHM = "HS256"
VERIFIED_TOKENS_KEPT = 10_000


def new_password_context() -> CryptContext:
    """argon2id at passlib's defaults (64 MiB, 3 passes, 4 lanes: ~0.1 s a hash here)."""
    return CryptContext(schemes=["argon2"], deprecated="auto")


password_context = new_password_context()
# Verified against unknown emails too, so both answers take the same time (no user enumeration by timing).
_DUMMY_HASH = password_context.hash("tradewind-dummy-password")


UNKNOWN_ADDRESS = "unknown"


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """Who is asking. A login (JWT, page session) may do everything; an API key (app/api_keys.py) carries the
    `scopes` it was given and its id."""

    id: str
    email: str
    scopes: frozenset[str] | None = None  # None: a login, not limited by scopes
    api_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A valid token: its user, the token version it carries and when it expires (Unix seconds)."""

    user: AuthenticatedUser
    version: int
    expires_at: float


def normalize_email(raw: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("email is required", field="email")
    if len(raw) > MAX_EMAIL:
        raise ValidationFailed("email is too long", field="email")
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email is not valid: {exc}", field="email") from None


def check_password_rules(password: str, field: str = "password") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters", field=field)
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD} characters", field=field)


class AuthService:
    """Register, log in, issue and verify tokens. Shared by the REST API and the NiceGUI pages."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        throttle: LoginThrottle | None = None,
        activity: ActivityLog | None = None,
    ) -> None:
        self.db = db
        self.activity = activity or ActivityLog(db)
        self.settings = settings
        self.throttle = throttle or LoginThrottle()
        self.registrations = RegisterThrottle(settings.register_limit_per_hour)
        self.versions = TokenVersions(self._load_version)
        # Bots send the same token with every request: its signature is checked once, its expiry every time.
        self._verified: OrderedDict[str, tuple[str, int, float]] = OrderedDict()  # token -> (sub, ver, exp)

    async def _load_version(self, user_id: str) -> UserVersion | None:
        user = await self.db.read(lambda s: users.get(s, user_id))
        return UserVersion(user.email, user.token_version) if user else None

    async def register(self, email: str, password: str, address: str | None = None) -> AuthenticatedUser:
        """Create a user and their paper account. 403 while REGISTRATION=closed; REGISTER_LIMIT_PER_HOUR
        attempts per client address (counted once the input is valid, before the password hash). The API and the
        pages always pass the client's address; in-process callers (scripts, benches) pass none and are not
        counted."""
        if self.settings.registration == "closed":
            raise Forbidden("Sign-up is closed on this server.", code="REGISTRATION_CLOSED")
        email = normalize_email(email)
        check_password_rules(password)
        if address is not None:
            self.registrations.count(address)
        password_hash = await asyncio.to_thread(password_context.hash, password)
        user = User(id=new_id(), email=email, password_hash=password_hash, created_at=now_ms())
        balances = self.settings.paper_balances

        def store(session: Session) -> None:
            if users.get_by_email(session, email) is not None:
                raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN", field="email")
            users.add(session, user)
            create_paper_account(session, user.id, balances)
            record_in(session, user.id, ActivityKind.REGISTERED, address=address)

        try:
            await self.db.write(store)
        except IntegrityError:  # lost a race with a concurrent registration of the same email
            raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN", field="email") from None
        return AuthenticatedUser(user.id, user.email)

    async def login(self, email: str, password: str, address: str = UNKNOWN_ADDRESS) -> AuthenticatedUser:
        """The user, or 401 INVALID_CREDENTIALS (same for an unknown email), or 429 by the rule of app/throttle.py."""
        invalid = NotAuthenticated("Wrong email or password.", code="INVALID_CREDENTIALS")
        try:
            email = normalize_email(email)
        except ValidationFailed:
            raise invalid from None
        attempt = self.throttle.begin(email, address)  # counted before any await: concurrency cannot skip it
        user = await self.db.read(lambda s: users.get_by_email(s, email))
        stored_hash = user.password_hash if user else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, password, stored_hash)
        if user is None or not ok:
            # Recorded for the email's owner only (an unknown email has nobody to show it to), in the background
            # so that the answer takes as long as for an unknown email.
            if user is not None:
                self.activity.record_later(user.id, ActivityKind.LOGIN_FAILED, address=address)
            raise invalid
        self.throttle.succeeded(attempt)
        await self.activity.record(user.id, ActivityKind.LOGIN_SUCCEEDED, address=address)
        return AuthenticatedUser(user.id, user.email)

    async def change_password(self, user_id: str, current: str, new: str, address: str = UNKNOWN_ADDRESS) -> int:
        """Check the current password (throttled like a login), store the new one, and end every session and token
        of the user. Returns the new token version (the caller keeps its own session with it)."""
        check_password_rules(new, field="new_password")
        user = await self.db.read(lambda s: users.get(s, user_id))
        if user is None:
            raise NotAuthenticated("The session is no longer valid; log in again.", code="INVALID_TOKEN")
        attempt = self.throttle.begin(user.email, address)
        if not await asyncio.to_thread(_verify, current, user.password_hash):
            raise ValidationFailed("The current password is wrong.", code="WRONG_PASSWORD", field="current_password")
        self.throttle.succeeded(attempt)
        new_hash = await asyncio.to_thread(password_context.hash, new)

        def store(session: Session) -> int:
            row = users.get(session, user_id)
            assert row is not None
            row.password_hash = new_hash
            session.add(row)
            record_in(session, user_id, ActivityKind.PASSWORD_CHANGED, address=address)
            return users.bump_token_version(session, user_id)

        version = await self.db.write(store)
        self.versions.changed(user_id, version)
        return version

    async def log_out_everywhere(self, user_id: str, address: str | None = None) -> None:
        """Invalidate every token, page session and open socket of the user (API keys stay: app/api_keys.py)."""

        def store(session: Session) -> int:
            record_in(session, user_id, ActivityKind.LOGGED_OUT_EVERYWHERE, address=address)
            return users.bump_token_version(session, user_id)

        version = await self.db.write(store)
        self.versions.changed(user_id, version)

    async def token_version(self, user_id: str) -> int | None:
        entry = await self.versions.get(user_id)
        return entry.token_version if entry else None

    async def issue_token(self, user_id: str, version: int | None = None) -> str:
        """A JWT for the user carrying `version` (default: the user's current token version)."""
        if version is None:
            version = await self.token_version(user_id)
        issued = int(time.time())
        claims = {
            "sub": user_id,
            "ver": version or 0,
            "iat": issued,
            "exp": issued + int(self.settings.jwt_expire_hours * 3600),
        }
        return jwt.encode(claims, self.settings.jwt_secret, algorithm=JWT_ALGORITHM)

    async def user_from_token(self, token: str) -> AuthenticatedUser:
        """The token's user, or NotAuthenticated for a missing, forged, expired or revoked token."""
        return (await self.verify_token(token)).user

    async def verify_token(self, token: str) -> VerifiedToken:
        """The token's user, version and expiry; NotAuthenticated for a missing, forged, expired or revoked token.
        The version check uses the in-memory cache: no database read once the user is cached."""
        user_id, version, expires = self._decode(token)
        entry = await self.versions.get(user_id)
        if entry is None or entry.token_version != version:
            raise NotAuthenticated("The token is no longer valid; log in again.", code="INVALID_TOKEN")
        return VerifiedToken(AuthenticatedUser(user_id, entry.email), version, expires)

    def _decode(self, token: str) -> tuple[str, int, float]:
        """(user id, token version, expiry) of a well-signed, unexpired token; NotAuthenticated otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if known[2] <= time.time():
                del self._verified[token]
                raise NotAuthenticated("The token has expired; log in again.", code="TOKEN_EXPIRED")
            return known
        try:
            claims = jwt.decode(
                token,
                self.settings.jwt_secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("The token has expired; log in again.", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise NotAuthenticated("The token is not valid.", code="INVALID_TOKEN") from None
        decoded = (str(claims["sub"]), int(claims.get("ver", 0)), float(claims["exp"]))
        self._verified[token] = decoded
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return decoded

    async def session_user(self, user_id: str | None, version: int | None) -> AuthenticatedUser | None:
        """The user behind a page session, if it is still valid (not logged out everywhere)."""
        if not user_id:
            return None
        entry = await self.versions.get(user_id)
        if entry is None or entry.token_version != version:
            return None
        return AuthenticatedUser(user_id, entry.email)


def _verify(password: str, stored_hash: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return bool(password_context.verify(password, stored_hash))
    except ValueError:
        return False

"""Users and authentication: argon2 passwords (passlib), JWT for the API, login throttling."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from email_validator import EmailNotValidError, validate_email
from passlib.context import CryptContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.accounts import create_paper_account
from app.config import Settings
from app.errors import Conflict, NotAuthenticated, Throttled, ValidationFailed
from app.ids import new_id, now_ms
from storage.db import Database
from storage.models import User
from storage.repositories import users

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_EMAIL = 254
JWT_ALGORITHM = "HS256"

password_context = CryptContext(schemes=["argon2"], deprecated="auto")
# Verified against unknown emails too, so both answers take the same time (no user enumeration by timing).
_DUMMY_HASH = password_context.hash("tradewind-dummy-password")


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    id: str
    email: str


class LoginThrottle:
    """At most `limit` failed logins per email within `window` seconds; then 429 until the oldest expires."""

    def __init__(self, limit: int = 5, window: float = 15 * 60, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, email: str) -> None:
        failures = self._recent(email)
        if len(failures) >= self.limit:
            retry_after = max(1, int(failures[0] + self.window - self.clock()) + 1)
            raise Throttled(
                "Too many failed login attempts; try again later.",
                retry_after=retry_after,
                code="TOO_MANY_ATTEMPTS",
            )

    def record_failure(self, email: str) -> None:
        self._recent(email).append(self.clock())

    def reset(self, email: str) -> None:
        self._failures.pop(email, None)

    def _recent(self, email: str) -> deque[float]:
        failures = self._failures.setdefault(email, deque())
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


def normalize_email(raw: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("email is required", field="email")
    if len(raw) > MAX_EMAIL:
        raise ValidationFailed("email is too long", field="email")
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email is not valid: {exc}", field="email") from None


def check_password_rules(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD} characters", field="password")


class AuthService:
    """Register, log in, issue and verify tokens. Shared by the REST API and the NiceGUI pages."""

    def __init__(self, db: Database, settings: Settings, throttle: LoginThrottle | None = None) -> None:
        self.db = db
        self.settings = settings
        self.throttle = throttle or LoginThrottle()

    async def register(self, email: str, password: str) -> AuthenticatedUser:
        email = normalize_email(email)
        check_password_rules(password)
        password_hash = await asyncio.to_thread(password_context.hash, password)
        user = User(id=new_id(), email=email, password_hash=password_hash, created_at=now_ms())
        balances = self.settings.paper_balances

        def store(session: Session) -> None:
            if users.get_by_email(session, email) is not None:
                raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN", field="email")
            users.add(session, user)
            create_paper_account(session, user.id, balances)

        try:
            await self.db.write(store)
        except IntegrityError:  # lost a race with a concurrent registration of the same email
            raise Conflict("An account with this email already exists.", code="EMAIL_TAKEN", field="email") from None
        return AuthenticatedUser(user.id, user.email)

    async def login(self, email: str, password: str) -> AuthenticatedUser:
        invalid = NotAuthenticated("Wrong email or password.", code="INVALID_CREDENTIALS")
        try:
            email = normalize_email(email)
        except ValidationFailed:
            raise invalid from None
        self.throttle.check(email)
        user = await self.db.read(lambda s: users.get_by_email(s, email))
        stored_hash = user.password_hash if user else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, password, stored_hash)
        if user is None or not ok:
            self.throttle.record_failure(email)
            raise invalid
        self.throttle.reset(email)
        return AuthenticatedUser(user.id, user.email)

    async def change_password(self, user_id: str, current: str, new: str) -> None:
        """Check the current password, store the new one, and end every other session and token."""
        check_password_rules(new)
        user = await self.db.read(lambda s: users.get(s, user_id))
        if user is None or not await asyncio.to_thread(_verify, current, user.password_hash):
            raise ValidationFailed("The current password is wrong.", field="current_password")
        new_hash = await asyncio.to_thread(password_context.hash, new)

        def store(session: Session) -> None:
            row = users.get(session, user_id)
            assert row is not None
            row.password_hash = new_hash
            session.add(row)
            users.bump_token_version(session, user_id)

        await self.db.write(store)

    async def log_out_everywhere(self, user_id: str) -> None:
        """Invalidate every token and page session of the user."""
        await self.db.write(lambda s: users.bump_token_version(s, user_id))

    async def token_version(self, user_id: str) -> int | None:
        user = await self.db.read(lambda s: users.get(s, user_id))
        return user.token_version if user else None

    async def issue_token(self, user_id: str) -> str:
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
        user = await self.db.read(lambda s: users.get(s, str(claims["sub"])))
        if user is None or user.token_version != claims.get("ver", 0):
            raise NotAuthenticated("The token is no longer valid; log in again.", code="INVALID_TOKEN")
        return AuthenticatedUser(user.id, user.email)

    async def session_user(self, user_id: str | None, version: int | None) -> AuthenticatedUser | None:
        """The user behind a page session, if it is still valid (not logged out everywhere)."""
        if not user_id:
            return None
        user = await self.db.read(lambda s: users.get(s, user_id))
        if user is None or user.token_version != version:
            return None
        return AuthenticatedUser(user.id, user.email)


def _verify(password: str, stored_hash: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return bool(password_context.verify(password, stored_hash))
    except ValueError:
        return False

"""The activity log: the append-only record of what happened to an account (not orders: those are events).

Every service that changes an account records it here, in the same transaction as the change where it has one
(`record_in`), else right after it (`record`). Other modules call `ActivityLog.record(user_id, kind, ...)` — e.g.
a trading-state change — with a kind from `ActivityKind` (add one there) and a small detail of strings.

Failed logins are recorded only for an email that belongs to a user, against that user, with the client address;
for an unknown email there is nobody to show them to (the login throttle still counts them). Attempts refused by the
throttle (429) are not recorded: they never reached the password check. Growth is bounded per user (newest 1000
records, and separately the newest 100 failed logins: storage/repositories/activity.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session

from app.ids import now_ms
from storage.db import Database
from storage.models import Activity
from storage.repositories import activity

log = logging.getLogger(__name__)

MAX_DETAIL_VALUE = 200


class ActivityKind(StrEnum):
    REGISTERED = "REGISTERED"
    LOGIN_SUCCEEDED = "LOGIN_SUCCEEDED"
    LOGIN_FAILED = activity.FAILED_LOGIN
    LOGGED_OUT_EVERYWHERE = "LOGGED_OUT_EVERYWHERE"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # noqa: S105 (an activity kind, not a password)
    EXCHANGE_KEY_ADDED = "EXCHANGE_KEY_ADDED"
    EXCHANGE_KEY_REMOVED = "EXCHANGE_KEY_REMOVED"
    API_KEY_CREATED = "API_KEY_CREATED"
    API_KEY_REVOKED = "API_KEY_REVOKED"
    PAPER_RESET = "PAPER_RESET"
    TRADING_STATE_CHANGED = "TRADING_STATE_CHANGED"  # the kill switch (app/trading_state_service.py)


@dataclass(frozen=True, slots=True)
class ActivityView:
    id: int
    kind: str
    ts: int
    address: str | None
    detail: dict[str, str]


def record_in(
    session: Session,
    user_id: str,
    kind: ActivityKind,
    *,
    address: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    """Append a record in the caller's transaction (it is kept only if the change it describes commits)."""
    clean = {key: str(value)[:MAX_DETAIL_VALUE] for key, value in (detail or {}).items()}
    row = Activity(
        user_id=user_id,
        kind=str(kind),
        ts=now_ms(),
        address=address[:64] if address else None,
        detail=json.dumps(clean, separators=(",", ":")),
    )
    activity.append(session, row)


class ActivityLog:
    """Records account actions and reads them back, always for one user."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._later: set[asyncio.Task[None]] = set()

    async def record(
        self,
        user_id: str,
        kind: ActivityKind,
        *,
        address: str | None = None,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Append a record in its own transaction."""
        await self.db.write(lambda s: record_in(s, user_id, kind, address=address, detail=detail))

    def record_later(
        self,
        user_id: str,
        kind: ActivityKind,
        *,
        address: str | None = None,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Append a record in the background: for answers whose timing must not depend on whether something was
        recorded (a failed login for an existing email must take as long as one for an unknown email)."""
        task = asyncio.get_running_loop().create_task(self._record_quietly(user_id, kind, address, detail))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _record_quietly(
        self, user_id: str, kind: ActivityKind, address: str | None, detail: dict[str, str] | None
    ) -> None:
        try:
            await self.record(user_id, kind, address=address, detail=detail)
        except Exception:  # the answer was sent already; a lost record must not become an unhandled task error
            log.exception("could not record %s for user %s", kind, user_id)

    async def drain(self) -> None:
        """Wait for background records (before the database closes; tests before they read)."""
        while self._later:
            await asyncio.gather(*self._later, return_exceptions=True)

    async def recent(self, user_id: str, limit: int = 50, before: int | None = None) -> list[ActivityView]:
        """The user's records newest first; pass the last id seen as `before` for the next page."""
        rows = await self.db.read(lambda s: activity.page(s, user_id, limit, before))
        return [ActivityView(row.id or 0, row.kind, row.ts, row.address, json.loads(row.detail)) for row in rows]

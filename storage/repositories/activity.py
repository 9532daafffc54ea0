"""The activity log: append, page newest first, and keep it bounded per user.

Bound: the newest KEEP_FAILED_LOGINS failed logins and the newest KEEP_OTHERS other records of each user. Failed
logins have their own allowance so that someone guessing a user's password cannot push the real account actions out
of the log.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.models import Activity

KEEP_FAILED_LOGINS = 100
KEEP_OTHERS = 1000
FAILED_LOGIN = "LOGIN_FAILED"


def append(session: Session, row: Activity) -> None:
    """Add one record in the caller's transaction and drop what falls beyond the bound of its kind."""
    session.add(row)
    session.flush()
    failed = row.kind == FAILED_LOGIN
    same_class = col(Activity.kind) == FAILED_LOGIN if failed else col(Activity.kind) != FAILED_LOGIN
    keep = KEEP_FAILED_LOGINS if failed else KEEP_OTHERS
    oldest_kept = session.exec(
        select(Activity.id)
        .where(col(Activity.user_id) == row.user_id, same_class)
        .order_by(col(Activity.id).desc())
        .offset(keep - 1)
        .limit(1)
    ).first()
    if oldest_kept is not None:
        session.execute(
            delete(Activity).where(col(Activity.user_id) == row.user_id, same_class, col(Activity.id) < oldest_kept)
        )


def page(session: Session, user_id: str, limit: int, before: int | None = None) -> list[Activity]:
    """The user's records newest first; `before` (a record id) continues an earlier page."""
    query = select(Activity).where(col(Activity.user_id) == user_id)
    if before is not None:
        query = query.where(col(Activity.id) < before)
    return list(session.exec(query.order_by(col(Activity.id).desc()).limit(limit)))

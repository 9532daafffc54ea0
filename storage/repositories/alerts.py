"""Price alerts: a user's "tell me when SYMBOL crosses PRICE" rows. Firing is one conditional UPDATE."""

from __future__ import annotations

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from storage.models import PriceAlert


def add(session: Session, alert: PriceAlert) -> PriceAlert:
    session.add(alert)
    session.flush()
    return alert


def list_for_user(session: Session, user_id: str) -> list[PriceAlert]:
    """The user's alerts, newest first (active and triggered)."""
    query = (
        select(PriceAlert)
        .where(PriceAlert.user_id == user_id)
        .order_by(col(PriceAlert.created_at).desc(), col(PriceAlert.id).desc())
    )
    return list(session.exec(query))


def count_active_for_user(session: Session, user_id: str) -> int:
    query = select(func.count()).where(PriceAlert.user_id == user_id, col(PriceAlert.triggered_at).is_(None))
    return int(session.exec(query).one())


def active(session: Session) -> list[PriceAlert]:
    """Every alert that has not fired yet (loaded once at start-up into memory)."""
    return list(session.exec(select(PriceAlert).where(col(PriceAlert.triggered_at).is_(None))))


def delete_owned(session: Session, user_id: str, alert_id: str) -> bool:
    """Delete the user's alert; False if it does not exist or belongs to someone else."""
    result = session.execute(
        delete(PriceAlert)
        .where(col(PriceAlert.id) == alert_id, col(PriceAlert.user_id) == user_id)
        .returning(col(PriceAlert.id))
    )
    return result.first() is not None


def mark_triggered(session: Session, alert_id: str, ts: int) -> bool:
    """Set triggered_at once: True only for the one caller whose UPDATE found the alert still untriggered."""
    result = session.execute(
        update(PriceAlert)
        .where(col(PriceAlert.id) == alert_id, col(PriceAlert.triggered_at).is_(None))
        .values(triggered_at=ts)
        .returning(col(PriceAlert.id))
    )
    return result.first() is not None


def prune_fired(session: Session, user_id: str, keep: int) -> None:
    """Delete the user's fired alerts beyond the newest `keep` (by firing time)."""
    newest = (
        select(PriceAlert.id)
        .where(PriceAlert.user_id == user_id, col(PriceAlert.triggered_at).is_not(None))
        .order_by(col(PriceAlert.triggered_at).desc(), col(PriceAlert.id).desc())
        .limit(keep)
    )
    session.execute(
        delete(PriceAlert).where(
            col(PriceAlert.user_id) == user_id,
            col(PriceAlert.triggered_at).is_not(None),
            col(PriceAlert.id).not_in(newest.scalar_subquery()),
        )
    )

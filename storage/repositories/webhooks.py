"""Webhooks and their delivery attempts. Every read and change of a user's rows filters by that user."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.models import Webhook, WebhookDelivery


def add(session: Session, webhook: Webhook) -> Webhook:
    session.add(webhook)
    session.flush()
    return webhook


def count_for_user(session: Session, user_id: str) -> int:
    return int(session.exec(select(func.count()).where(Webhook.user_id == user_id)).one())


def list_for_user(session: Session, user_id: str) -> list[Webhook]:
    """The user's webhooks, oldest first."""
    query = select(Webhook).where(Webhook.user_id == user_id).order_by(col(Webhook.id))
    return list(session.exec(query))


def all_webhooks(session: Session) -> list[Webhook]:
    """Every webhook (loaded once at start-up into the in-memory index)."""
    return list(session.exec(select(Webhook)))


def get(session: Session, webhook_id: str) -> Webhook | None:
    return session.get(Webhook, webhook_id)


def get_owned(session: Session, user_id: str, webhook_id: str) -> Webhook | None:
    webhook = session.get(Webhook, webhook_id)
    return webhook if webhook is not None and webhook.user_id == user_id else None


def delete_owned(session: Session, user_id: str, webhook_id: str) -> bool:
    """Delete the user's webhook and its delivery records; False if it is unknown or someone else's."""
    if get_owned(session, user_id, webhook_id) is None:
        return False
    session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == webhook_id))
    session.execute(delete(Webhook).where(col(Webhook.id) == webhook_id))
    return True


def record(session: Session, delivery: WebhookDelivery, keep: int) -> bool:
    """Store one attempt and keep only the newest `keep` records of its webhook. False (nothing stored) when the
    webhook was deleted meanwhile."""
    if session.get(Webhook, delivery.webhook_id) is None:
        return False
    session.add(delivery)
    session.flush()
    cutoff = session.exec(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.webhook_id == delivery.webhook_id)
        .order_by(col(WebhookDelivery.id).desc())
        .offset(keep)
        .limit(1)
    ).first()
    if cutoff is not None:
        session.execute(
            delete(WebhookDelivery).where(
                col(WebhookDelivery.webhook_id) == delivery.webhook_id, col(WebhookDelivery.id) <= cutoff
            )
        )
    return True


def recent_deliveries(session: Session, webhook_id: str, limit: int) -> list[WebhookDelivery]:
    """A webhook's newest delivery records first (ids are time-ordered ULIDs)."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(col(WebhookDelivery.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))

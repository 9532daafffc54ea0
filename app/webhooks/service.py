"""Webhook registration and the event taps.

A user registers URLs for event kinds: `fill` (every FILL event), `rejection` (an ORDER_UPDATE whose status is
REJECTED) and `alert` (a fired price alert). The service keeps an in-memory index of who wants what and taps the
event bus and the alert service only for users that have webhooks; a tap builds a `Job` and offers it to the
dispatcher's bounded queue (delivery.py), so publishing an event never waits for a receiver.

Several replicas (app/fanout.py): a replica sends the webhooks of the events it commits, so every replica's index
must know every webhook. A create or delete here is handed to `relay`; the other replicas apply it with
`index_changed`, and one that may have missed some (its Redis connection was lost) calls `reload_index`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session

from app.alerts import AlertService
from app.crypto import KeyBox
from app.errors import NotFound, ValidationFailed
from app.events import EventBus, UserEvent
from app.ids import new_id, now_ms
from app.webhooks.delivery import Job, WebhookDispatcher
from app.webhooks.guard import HostGuard
from app.webhooks.signing import new_secret, secret_binding
from storage.db import Database
from storage.models import Webhook, WebhookDelivery
from storage.repositories import webhooks as repo

log = logging.getLogger(__name__)

FILL, REJECTION, ALERT = "fill", "rejection", "alert"
KINDS = (FILL, REJECTION, ALERT)
MAX_DELIVERIES_SHOWN = 100
# (user id, webhook id, its event kinds, or None once deleted): tells the other replicas (app/fanout.py).
IndexRelay = Callable[[str, str, tuple[str, ...] | None], None]


@dataclass(frozen=True, slots=True)
class WebhookView:
    id: str
    url: str
    events: tuple[str, ...]
    created_at: int

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookView:
        return cls(webhook.id, webhook.url, _kinds(webhook.events), webhook.created_at)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    event_id: str | None
    event: str | None
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int | None
    created_at: int

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryView:
        return cls(
            row.id,
            row.event_id,
            row.event,
            row.attempt,
            row.outcome,
            row.status_code,
            row.error,
            row.duration_ms,
            row.created_at,
        )


def _kinds(stored: str) -> tuple[str, ...]:
    return tuple(kind for kind in stored.split(",") if kind)


class WebhookService:
    """Create, list and delete webhooks, read their deliveries; feed events to the dispatcher."""

    def __init__(
        self,
        db: Database,
        keybox: KeyBox,
        bus: EventBus,
        alerts: AlertService,
        guard: HostGuard,
        dispatcher: WebhookDispatcher,
        *,
        max_per_user: int,
    ) -> None:
        self.db, self.keybox, self.bus, self.alerts = db, keybox, bus, alerts
        self.guard, self.dispatcher, self.max_per_user = guard, dispatcher, max_per_user
        self._index: dict[str, dict[str, frozenset[str]]] = {}  # user id -> webhook id -> kinds
        self._taps: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}  # user id -> unsubscribers
        self.relay: IndexRelay | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every webhook into the index, tap the events of their owners, start the workers."""
        for webhook in await self.db.read(repo.all_webhooks):
            self._add_to_index(webhook.user_id, webhook.id, _kinds(webhook.events))
        self.dispatcher.start()

    async def stop(self) -> None:
        for unsubscribe_events, unsubscribe_alerts in self._taps.values():
            unsubscribe_events()
            unsubscribe_alerts()
        self._taps.clear()
        self._index.clear()
        await self.dispatcher.stop()

    # ---- user operations ----------------------------------------------------------------------------------

    async def create(self, user_id: str, url: Any, events: Any) -> tuple[WebhookView, str]:
        """Register a webhook; returns it and its signing secret (the only time the secret is shown).
        422 for a refused URL (WEBHOOK_URL_REFUSED), bad event kinds or too many webhooks."""
        kinds = _checked_kinds(events)
        await self.guard.check(url)
        secret = new_secret()
        webhook_id = new_id()
        webhook = Webhook(
            id=webhook_id,
            user_id=user_id,
            url=url,
            events=",".join(kinds),
            secret_enc=self.keybox.seal(secret, secret_binding(webhook_id)),
            key_id=self.keybox.key_id,
            created_at=now_ms(),
        )

        def store(session: Session) -> Webhook:
            if repo.count_for_user(session, user_id) >= self.max_per_user:
                raise ValidationFailed(
                    f"at most {self.max_per_user} webhooks per user", code="TOO_MANY_WEBHOOKS", field="url"
                )
            return repo.add(session, webhook)

        await self.db.write(store)
        self._add_to_index(user_id, webhook_id, kinds)
        self._announce(user_id, webhook_id, kinds)
        return WebhookView.of(webhook), secret

    async def list_for_user(self, user_id: str) -> list[WebhookView]:
        return [WebhookView.of(w) for w in await self.db.read(lambda s: repo.list_for_user(s, user_id))]

    async def delete(self, user_id: str, webhook_id: str) -> None:
        """Delete one of the user's webhooks and its records; 404 if it is not theirs."""
        if not await self.db.write(lambda s: repo.delete_owned(s, user_id, webhook_id)):
            raise NotFound("Webhook not found.", code="WEBHOOK_NOT_FOUND")
        self._remove_from_index(user_id, webhook_id)
        self._announce(user_id, webhook_id, None)

    async def deliveries(self, user_id: str, webhook_id: str, limit: int = 50) -> list[DeliveryView]:
        """The webhook's newest delivery records first; 404 if it is not the user's."""
        limit = max(1, min(limit, MAX_DELIVERIES_SHOWN))

        def read(session: Session) -> list[WebhookDelivery] | None:
            if repo.get_owned(session, user_id, webhook_id) is None:
                return None
            return repo.recent_deliveries(session, webhook_id, limit)

        rows = await self.db.read(read)
        if rows is None:
            raise NotFound("Webhook not found.", code="WEBHOOK_NOT_FOUND")
        return [DeliveryView.of(row) for row in rows]

    async def overview(self, user_id: str, per_webhook: int = 5) -> list[tuple[WebhookView, list[DeliveryView]]]:
        """The user's webhooks, each with its newest delivery records (the settings page)."""
        return [
            (view, await self.deliveries(user_id, view.id, per_webhook)) for view in await self.list_for_user(user_id)
        ]

    # ---- other replicas ---------------------------------------------------------------------------------------

    def index_changed(self, user_id: str, webhook_id: str, kinds: tuple[str, ...] | None) -> None:
        """A webhook was created (`kinds`) or deleted (None) on another replica."""
        if kinds is None:
            self._remove_from_index(user_id, webhook_id)
        else:
            self._add_to_index(user_id, webhook_id, tuple(k for k in kinds if k in KINDS))

    async def reload_index(self) -> None:
        """Make the index match the database again (creates and deletes on other replicas may have been missed)."""
        stored = {(w.user_id, w.id): _kinds(w.events) for w in await self.db.read(repo.all_webhooks)}
        for user_id, hooks in list(self._index.items()):
            for webhook_id in list(hooks):
                if (user_id, webhook_id) not in stored:
                    self._remove_from_index(user_id, webhook_id)
        for (user_id, webhook_id), kinds in stored.items():
            self._add_to_index(user_id, webhook_id, kinds)

    def _announce(self, user_id: str, webhook_id: str, kinds: tuple[str, ...] | None) -> None:
        if self.relay is not None:
            try:
                self.relay(user_id, webhook_id, kinds)
            except Exception:  # the local change stands whatever the fan-out does
                log.exception("webhook index relay failed")

    # ---- event taps (synchronous, on the publishing path: only queue work) --------------------------------

    def _on_user_event(self, event: UserEvent) -> None:
        if event.type == "FILL":
            kind = FILL
        elif event.type == "ORDER_UPDATE" and event.data.get("status") == "REJECTED":
            kind = REJECTION
        else:
            return
        self._offer(event.user_id, kind, event.payload or orjson.dumps(event.data).decode(), event.ts or now_ms())

    def _on_alert(self, user_id: str, alert: dict[str, Any]) -> None:
        self._offer(user_id, ALERT, orjson.dumps(alert).decode(), alert.get("triggered_at") or now_ms())

    def _offer(self, user_id: str, kind: str, data_json: str, created_at: int) -> None:
        wanted = [wid for wid, kinds in self._index.get(user_id, {}).items() if kind in kinds]
        if not wanted:
            return
        event_id = new_id()  # one id per event: the same event sent to two webhooks carries the same id
        for webhook_id in wanted:
            self.dispatcher.offer(Job(webhook_id, user_id, kind, event_id, created_at, data_json))

    def _add_to_index(self, user_id: str, webhook_id: str, kinds: tuple[str, ...]) -> None:
        self._index.setdefault(user_id, {})[webhook_id] = frozenset(kinds)
        if user_id not in self._taps:
            self._taps[user_id] = (
                # Only events committed here: with several replicas, each event is sent once, by its replica.
                self.bus.subscribe_user(user_id, self._on_user_event, remote=False),
                self.alerts.subscribe(user_id, lambda alert: self._on_alert(user_id, alert)),
            )

    def _remove_from_index(self, user_id: str, webhook_id: str) -> None:
        hooks = self._index.get(user_id, {})
        hooks.pop(webhook_id, None)
        if not hooks:
            self._index.pop(user_id, None)
            for unsubscribe in self._taps.pop(user_id, ()):
                unsubscribe()


def _checked_kinds(events: Any) -> tuple[str, ...]:
    if not isinstance(events, list | tuple) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationFailed(f"events must be a non-empty list of {', '.join(KINDS)}", field="events")
    wanted = [e.strip().lower() for e in events]
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        raise ValidationFailed(f"unknown event kinds {', '.join(unknown)}: use {', '.join(KINDS)}", field="events")
    return tuple(kind for kind in KINDS if kind in wanted)

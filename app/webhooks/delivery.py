"""Background delivery of webhook events: a bounded queue drained by a few worker tasks.

The event bus callback only puts a small `Job` on the queue (`offer`, never waits), so the order path is never
slowed by a receiver. When the queue is full the job is dropped and counted; a worker then stores one DROPPED
record per webhook with the count. One user's deliveries go one at a time, in order, and at most `per_user` of
them wait: a user whose receiver is slow or silent holds one worker and fills only their own share of the queue,
so other users' webhooks keep flowing. Each delivery is retried with the project's one backoff loop (app/retry.py);
every attempt (status code or error, duration) is stored. Before every attempt the URL goes through the SSRF guard
again and the request goes to the address the guard checked (guard.py). Jobs still queued when the server stops
are not delivered (the queue lives in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson

from app.crypto import DecryptionError, KeyBox
from app.ids import new_id, now_ms
from app.retry import RetryPolicy, Sleep, retry
from app.tasks import cancel_and_wait
from app.webhooks.guard import Destination, HostGuard, HostUnresolved, WebhookRefused
from app.webhooks.signing import SIGNATURE_HEADER, secret_binding, signature_header
from storage.db import Database
from storage.models import Webhook, WebhookDelivery
from storage.repositories import webhooks as repo

log = logging.getLogger(__name__)

DELIVERED, FAILED, REFUSED, DROPPED = "DELIVERED", "FAILED", "REFUSED", "DROPPED"
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx: the receiver may manage later
USER_AGENT = "Tradewind-Webhooks/1"
MAX_ERROR_LENGTH = 200
DEFAULT_POLICY = RetryPolicy(initial=1.0, maximum=60.0, max_attempts=5)  # waits 1 + 2 + 4 + 8 s


@dataclass(frozen=True, slots=True)
class Job:
    """One event for one webhook. `data_json` is the event's data, serialised once by the bus."""

    webhook_id: str
    user_id: str
    kind: str
    event_id: str
    created_at: int
    data_json: str

    def body(self) -> bytes:
        envelope = {"id": self.event_id, "type": self.kind, "created_at": self.created_at}
        return orjson.dumps({**envelope, "data": orjson.Fragment(self.data_json)})


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    timeout: float = 5.0  # seconds for one attempt, connection to response headers
    policy: RetryPolicy = DEFAULT_POLICY
    queue_size: int = 1000
    workers: int = 4  # concurrent deliveries: one slow receiver holds up only one worker
    per_user: int = 100  # jobs of one user waiting or in flight; more are dropped (and recorded) for that user only
    keep: int = 100  # delivery records kept per webhook


class _Retryable(Exception):
    """An attempt that may succeed later: network error, timeout, 408/425/429 or 5xx."""


class WebhookDispatcher:
    """Owns the queue, the workers and the HTTP client. `sleep` and `clock` are injectable for tests."""

    def __init__(
        self,
        db: Database,
        keybox: KeyBox,
        guard: HostGuard,
        options: DeliveryOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.keybox, self.guard, self.options = db, keybox, guard, options
        self.sleep, self.clock = sleep, clock
        self._transport = transport
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=options.queue_size)
        self._dropped: Counter[tuple[str, str]] = Counter()  # (webhook id, user id) -> jobs dropped
        self._pending: Counter[str] = Counter()  # user id -> jobs queued, held or in flight
        self._busy: set[str] = set()  # users with a delivery in flight
        self._held: dict[str, deque[Job]] = {}  # user id -> jobs waiting for that user's delivery in flight
        self._workers: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._workers:
            return
        self._client = httpx.AsyncClient(
            transport=self._transport or httpx.AsyncHTTPTransport(retries=0),
            timeout=httpx.Timeout(self.options.timeout),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect by name, past the address check
            # No pooled connections: a pool is keyed by address, so two hosts on one address would share a TLS
            # connection checked for the other's name.
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"webhook-worker-{n}") for n in range(self.options.workers)
        ]

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        await cancel_and_wait(*workers)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- intake (called from event-bus callbacks: must not wait) --------------------------------------------

    def offer(self, job: Job) -> None:
        """Queue a job, or count it as dropped when the queue, or the user's share of it, is full."""
        if self._pending[job.user_id] >= self.options.per_user:
            self._dropped[(job.webhook_id, job.user_id)] += 1
            return
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._dropped[(job.webhook_id, job.user_id)] += 1
            return
        self._pending[job.user_id] += 1

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker (or for their user's delivery in flight)."""
        return self._queue.qsize() + sum(len(held) for held in self._held.values())

    # ---- workers ------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job: Job | None = await self._queue.get()
            self._queue.task_done()
            if job is not None and job.user_id in self._busy:
                self._held.setdefault(job.user_id, deque()).append(job)  # after the delivery in flight
                job = None
            if job is not None:
                self._busy.add(job.user_id)
            while job is not None:  # this user's jobs, one at a time, in order
                try:
                    await self.deliver(job)
                except Exception:
                    log.exception("webhook delivery of event %s failed", job.event_id)
                job = self._next_of(job.user_id)
            await self._record_drops()

    def _next_of(self, user_id: str) -> Job | None:
        """The user's next held job, or None (the user is no longer busy)."""
        self._pending[user_id] -= 1
        held = self._held.get(user_id)
        if held:
            job = held.popleft()
            if not held:
                del self._held[user_id]
            return job
        self._held.pop(user_id, None)
        self._busy.discard(user_id)
        if self._pending[user_id] <= 0:
            del self._pending[user_id]
        return None

    async def deliver(self, job: Job) -> None:
        """Deliver one job with retries; every attempt is recorded."""
        webhook = await self.db.read(lambda s: repo.get(s, job.webhook_id))
        if webhook is None:
            return  # deleted since the event was queued
        try:
            secret = self.keybox.open(
                webhook.secret_enc, sealed_with=webhook.key_id, associated_data=secret_binding(webhook.id)
            )
        except DecryptionError:
            await self._record(job, 1, FAILED, error="the signing secret cannot be opened (ENCRYPTION_KEY changed)")
            return
        body = job.body()
        attempts = 0

        async def attempt() -> None:
            nonlocal attempts
            attempts += 1
            await self._attempt(job, webhook, secret, body, attempts)

        with contextlib.suppress(_Retryable):  # the last attempt's failure is already recorded
            await retry(attempt, policy=self.options.policy, retry_on=_Retryable, sleep=self.sleep)

    async def _attempt(self, job: Job, webhook: Webhook, secret: str, body: bytes, number: int) -> None:
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            destination = await self.guard.check(webhook.url)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
            # POST finishes (gh-86296), and stop() then waited for this worker for ever.
            async with asyncio.timeout(self.options.timeout):
                status = await self._post(destination, job, secret, body)
        except HostUnresolved as exc:
            error = exc.message
        except WebhookRefused as exc:
            await self._record(job, number, REFUSED, error=exc.message, duration_ms=_since(started))
            return  # the guard's verdict does not change by retrying
        except (TimeoutError, httpx.TimeoutException):
            error = "timed out"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            error = _describe(exc)
        delivered = status is not None and 200 <= status < 300
        if status is not None and 300 <= status < 400:
            error = "redirect not followed"
        await self._record(
            job, number, DELIVERED if delivered else FAILED, status=status, error=error, duration_ms=_since(started)
        )
        if not delivered and (status is None or status in RETRY_STATUSES or status >= 500):
            raise _Retryable(error or f"HTTP {status}")

    async def _post(self, destination: Destination, job: Job, secret: str, body: bytes) -> int:
        """POST to the checked address; the Host header (and TLS server name) stay the URL's host."""
        assert self._client is not None, "start() the dispatcher first"
        url = httpx.URL(destination.url)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tradewind-Event": job.kind,
            "Tradewind-Event-Id": job.event_id,
            SIGNATURE_HEADER: signature_header(secret, int(self.clock()), body),
        }
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        pinned = url.copy_with(host=destination.address)
        async with self._client.stream(
            "POST", pinned, content=body, headers=headers, extensions=extensions
        ) as response:
            return response.status_code  # the receiver's body is never read

    # ---- records ------------------------------------------------------------------------------------------

    async def _record(
        self,
        job: Job,
        attempt: int,
        outcome: str,
        *,
        status: int | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        row = WebhookDelivery(
            id=new_id(),
            webhook_id=job.webhook_id,
            user_id=job.user_id,
            event_id=job.event_id,
            event=job.kind,
            attempt=attempt,
            outcome=outcome,
            status_code=status,
            error=error[:MAX_ERROR_LENGTH] if error else None,
            duration_ms=duration_ms,
            created_at=now_ms(),
        )
        await self._store(row)

    async def _record_drops(self) -> None:
        if not self._dropped:
            return
        dropped, self._dropped = self._dropped, Counter()
        for (webhook_id, user_id), count in dropped.items():
            log.warning("webhook %s: %d event(s) dropped, the delivery queue was full", webhook_id, count)
            row = WebhookDelivery(
                id=new_id(),
                webhook_id=webhook_id,
                user_id=user_id,
                outcome=DROPPED,
                error=f"{count} event(s) dropped: the delivery queue was full",
                created_at=now_ms(),
            )
            await self._store(row)

    async def _store(self, row: WebhookDelivery) -> None:
        try:
            await self.db.write(lambda s: repo.record(s, row, self.options.keep))
        except Exception:
            log.exception("could not store a webhook delivery record")


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(exc: BaseException) -> str:
    """A short error for the record: the exception's class, never its text (it may echo the receiver)."""
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "TLS certificate not valid for the host"
    if isinstance(exc, httpx.ConnectError | ConnectionError):
        return "connection failed"
    return type(exc).__name__

"""GET /ws?token=<JWT or API key> (or an `Authorization: Bearer` header): prices and the user's order/fill/balance
events on one socket. An API key's socket closes with 1008 the moment the key is revoked.

A socket lives only as long as its token: it is closed with 1008 when the token expires (a timer set at the
token's `exp`) or when the user's token version changes (log out everywhere, password change; the in-memory token
versions notify the socket, nothing polls the database). At most MAX_SOCKETS_PER_USER sockets per user; inbound
messages over 64 KiB are refused by uvicorn with 1009 before they are read whole (app/api/server_options.py).

Per socket, memory is bounded whatever the client does: prices keep only the newest message per symbol, user
events wait in a bounded buffer, and when that overflows (or a seq gap shows up) the socket re-reads the durable
event log from its last sent seq. So a slow client gets the latest prices and still every order event, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlmodel import Session

from app.api.server_options import WS_MAX_BYTES
from app.api_key_cache import VerifiedKey
from app.api_keys import looks_like_key
from app.auth import UNKNOWN_ADDRESS, VerifiedToken
from app.domain import normalize_symbol
from app.errors import TradewindError
from app.events import PriceUpdate, UserEvent
from app.services import Services
from storage.repositories import events

router = APIRouter()
log = logging.getLogger(__name__)

MAX_BUFFERED_EVENTS = 1000
REPLAY_PAGE = 500
MAX_MESSAGE_BYTES = WS_MAX_BYTES  # uvicorn refuses bigger ones first where main.py's options apply
MAX_SOCKETS_PER_USER = 20
POLICY_VIOLATION = 1008
SESSION_ENDED = "The session has ended (logged out everywhere or password changed); log in again."
EXPIRED_REASON = "The token has expired; log in again."
KEY_REVOKED = "The API key was revoked."


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, token: str | None = None) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    credential = token or _bearer(websocket)
    verified: VerifiedToken | None = None
    key: VerifiedKey | None = None
    try:
        if looks_like_key(credential):
            address = websocket.client.host if websocket.client else UNKNOWN_ADDRESS
            key = await services.api_keys.verify(credential, address)
            user_id = key.user_id
        else:
            verified = await services.auth.verify_token(credential)
            user_id = verified.user.id
    except TradewindError as exc:  # invalid, revoked, expired, not from this address, throttled
        await websocket.close(code=POLICY_VIOLATION, reason=exc.message[:120])
        return
    open_sockets = user_sockets(websocket).setdefault(user_id, set())
    if len(open_sockets) >= MAX_SOCKETS_PER_USER:  # checked and taken with no await in between
        await websocket.close(
            code=POLICY_VIOLATION, reason=f"Too many open sockets for this user (at most {MAX_SOCKETS_PER_USER})."
        )
        return
    session = SocketSession(websocket, user_id, services, verified)
    open_sockets.add(session)
    unwatch_key = _watch_key(services, key, session)
    try:
        await session.run()
    finally:
        unwatch_key()
        open_sockets.discard(session)
        if not open_sockets:
            user_sockets(websocket).pop(user_id, None)


def _bearer(websocket: WebSocket) -> str:
    """The credential of an `Authorization: Bearer …` header (bots that cannot put it in the query)."""
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _watch_key(services: Services, key: VerifiedKey | None, session: SocketSession) -> Callable[[], None]:
    """An API key's socket ends the moment the key is revoked (app/api_key_cache.py); returns the unsubscribe."""
    if key is None:
        return lambda: None
    unsubscribe = services.api_keys.cache.subscribe(key.key_id, lambda: session.end(KEY_REVOKED))
    if services.api_keys.cache.is_revoked(key.key_id):  # revoked while the socket was being accepted
        session.end(KEY_REVOKED)
    return unsubscribe


def user_sockets(websocket: WebSocket) -> dict[str, set[SocketSession]]:
    """The app's open sockets by user id (one table per app)."""
    state = websocket.app.state
    if not hasattr(state, "ws_sockets"):
        state.ws_sockets = {}
    return state.ws_sockets  # type: ignore[no-any-return]


class SocketSession:
    def __init__(
        self, websocket: WebSocket, user_id: str, services: Services, token: VerifiedToken | None = None
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.services = services
        self.token = token
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.symbols: set[str] = set(services.market.symbols)
        self.prices: dict[str, str] = {}
        self.events: deque[UserEvent] = deque()
        self.control: deque[str] = deque(maxlen=100)
        self.last_seq = 0
        self.replay_needed = False
        self.wake = asyncio.Event()
        self._rechecks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        # Subscribe before reading the latest seq, so nothing falls between the two; events and prices arriving
        # meanwhile wait in the buffers, and the sender starts only after CONNECTED, which is always first.
        unsubscribe_user = self.services.bus.subscribe_user(self.user_id, self._on_event)
        unsubscribe_prices = self.services.bus.subscribe_prices(self._on_price)
        unsubscribe_version, expiry = self._watch_lifetime()
        sender: asyncio.Task[None] | None = None
        receiver: asyncio.Task[None] | None = None
        try:
            self.last_seq = await self.services.db.read(lambda s: events.latest_seq(s, self.user_id))
            await self._recheck()  # a change between the token check and the subscription above
            if not self.ended.done():
                await self.websocket.send_text(
                    json.dumps({"type": "CONNECTED", "data": {"user_id": self.user_id, "seq": self.last_seq}})
                )
                sender = asyncio.create_task(self._send_loop())
                for update in self.services.bus.latest_prices.values():
                    self._on_price(update)
                receiver = asyncio.create_task(self._receive_loop())
                waiting: set[asyncio.Future[Any]] = {receiver, self.ended}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self.ended.done():
                await _stop(sender, receiver)
                await self.websocket.close(code=POLICY_VIOLATION, reason=self.ended.result())
            elif receiver is not None:
                receiver.result()  # the client left (WebSocketDisconnect) or the receive loop failed
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            unsubscribe_user()
            unsubscribe_prices()
            unsubscribe_version()
            if expiry is not None:
                expiry.cancel()
            await _stop(sender, receiver, *self._rechecks)

    # ---- lifetime: the token's expiry and version -------------------------------------------------------------

    def _watch_lifetime(self) -> tuple[Callable[[], None], asyncio.TimerHandle | None]:
        if self.token is None:
            return (lambda: None), None
        unsubscribe = self.services.auth.versions.subscribe(self.user_id, self._on_version)
        delay = max(0.0, self.token.expires_at - time.time())
        expiry = asyncio.get_running_loop().call_later(delay, self._end, EXPIRED_REASON)
        return unsubscribe, expiry

    def _on_version(self, _user_id: str, version: int | None) -> None:
        if version is None:  # invalidated without a version: look it up (one read serves every socket)
            task = asyncio.get_running_loop().create_task(self._recheck())
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)
        elif self.token is not None and version != self.token.version:
            self._end(SESSION_ENDED)

    async def _recheck(self) -> None:
        if self.token is None:
            return
        entry = await self.services.auth.versions.get(self.user_id)
        if entry is None or entry.token_version != self.token.version:
            self._end(SESSION_ENDED)

    def end(self, reason: str) -> None:
        """Close the socket with 1008 and `reason` (the token or key stopped being valid)."""
        self._end(reason)

    def _end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    # ---- inbound ----------------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            raw = await self.websocket.receive_text()
            if len(raw) > MAX_MESSAGE_BYTES:
                self._error("MESSAGE_TOO_LARGE", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                self._error("MALFORMED_MESSAGE", "messages must be JSON objects")
                continue
            if not isinstance(message, dict):
                self._error("MALFORMED_MESSAGE", "messages must be JSON objects")
                continue
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "PING":
            self._queue_control({"type": "PONG"})
        elif kind in ("SUBSCRIBE", "UNSUBSCRIBE"):
            symbols = message.get("symbols")
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                self._error("INVALID_SYMBOLS", "symbols must be a list of strings like BTCUSDT")
                return
            wanted = {normalize_symbol(s) for s in symbols}
            unknown = wanted - set(self.services.market.symbols)
            if unknown:
                self._error("UNKNOWN_SYMBOL", f"unknown symbols: {', '.join(sorted(unknown))}")
                return
            if kind == "SUBSCRIBE":
                self.symbols |= wanted
            else:
                self.symbols -= wanted
                for symbol in wanted:
                    self.prices.pop(symbol, None)
        elif kind == "RESUME":
            since = message.get("since_seq")
            if not isinstance(since, int) or isinstance(since, bool) or since < 0:
                self._error("INVALID_SEQ", "since_seq must be a non-negative integer")
                return
            self.last_seq = min(self.last_seq, since) if since <= self.last_seq else self.last_seq
            self.replay_needed = True
            self.wake.set()
        else:
            self._error("UNKNOWN_TYPE", "type must be SUBSCRIBE, UNSUBSCRIBE, RESUME or PING")

    def _error(self, code: str, message: str) -> None:
        self._queue_control({"type": "ERROR", "data": {"code": code, "message": message}})

    def _queue_control(self, message: dict[str, Any]) -> None:
        self.control.append(json.dumps(message))
        self.wake.set()

    # ---- outbound ---------------------------------------------------------------------------------------------

    def _on_event(self, event: UserEvent) -> None:
        if len(self.events) >= MAX_BUFFERED_EVENTS:
            self.events.clear()  # the log has them all: re-read from last_seq instead of buffering without end
            self.replay_needed = True
        else:
            self.events.append(event)
        self.wake.set()

    def _on_price(self, update: PriceUpdate) -> None:
        if update.symbol in self.symbols:
            self.prices[update.symbol] = update.message
            self.wake.set()

    async def _send_loop(self) -> None:
        send = self.websocket.send_text
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.control:
                await send(self.control.popleft())
            if self.replay_needed:
                await self._replay()
            replayed_for: UserEvent | None = None
            while self.events:
                event = self.events.popleft()
                if event.seq <= self.last_seq:
                    continue
                if event.seq != self.last_seq + 1:  # published out of order or missed: the log is the truth
                    if replayed_for is event:  # the log does not have what precedes it: never spin on it
                        log.error("event %s of user %s is ahead of the log; dropped", event.seq, self.user_id)
                        continue
                    replayed_for = event
                    self.events.appendleft(event)
                    await self._replay()
                    continue
                await send(event.message())
                self.last_seq = event.seq
            while self.prices:
                _, message = self.prices.popitem()
                await send(message)

    async def _replay(self) -> None:
        self.replay_needed = False
        while True:
            since = self.last_seq

            def page(session: Session, since: int = since) -> list[UserEvent]:
                rows = events.since(session, self.user_id, since, limit=REPLAY_PAGE)
                return [UserEvent(r.user_id, r.seq, r.type, json.loads(r.payload)) for r in rows]

            rows = await self.services.db.read(page)
            if self.ended.done():  # the session ended meanwhile: not one more page
                return
            for event in rows:
                await self.websocket.send_text(event.message())
                self.last_seq = event.seq
            if len(rows) < REPLAY_PAGE:
                return


async def _stop(*tasks: asyncio.Task[None] | None) -> None:
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

"""WebSocket /ws over a real uvicorn server and the `websockets` client: handshake, prices, control, coalescing."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, cast

import pytest
import uvicorn
import websockets
from fastapi import FastAPI
from sqlmodel import Session
from websockets.asyncio.client import ClientConnection

from app.api.ws import MAX_BUFFERED_EVENTS, SocketSession
from app.events import UserEvent
from app.ids import now_ms
from app.market.models import Trade
from app.services import Services
from storage.repositories import events as event_log
from tests.factories import PASSWORD, unique_email, wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
PRICE_KEYS = {"symbol", "price", "bid", "ask", "change_24h_pct", "ts"}


@pytest.fixture
def market(services: object) -> Services:
    return cast(Services, services)


@pytest.fixture
async def server(api_app: FastAPI) -> AsyncIterator[uvicorn.Server]:
    """The API app served by a real uvicorn on a free 127.0.0.1 port, in this test's event loop."""
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, what="uvicorn to start")
    yield server
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def base_url(server: uvicorn.Server) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
async def token(market: Services) -> str:
    user = await market.auth.register(unique_email("ws"), PASSWORD)
    return await market.auth.issue_token(user.id)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def recv_until(
    ws: ClientConnection, kind: str, timeout: float = 5.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read until a message of `kind`; returns it and everything read before it."""
    before: list[dict[str, Any]] = []
    while True:
        message = await recv_json(ws, timeout)
        if message["type"] == kind:
            return message, before
        before.append(message)


async def sync(ws: ClientConnection) -> list[dict[str, Any]]:
    """PING and read up to the PONG: the server has handled everything sent before. Returns what came first."""
    await ws.send(json.dumps({"type": "PING"}))
    return (await recv_until(ws, "PONG"))[1]


@pytest.fixture
async def connect(base_url: str, token: str) -> AsyncIterator[Callable[..., Any]]:
    """Open authenticated sockets (closed after the test); the CONNECTED message is consumed and checked."""
    opened: list[ClientConnection] = []

    async def open_socket(**kwargs: Any) -> ClientConnection:
        ws = await websockets.connect(f"{base_url}?token={token}", **kwargs)
        opened.append(ws)
        first = await recv_json(ws)
        assert first["type"] == "CONNECTED"
        return ws

    yield open_socket
    for ws in opened:
        await ws.close()


def trade(market: Services, symbol: str, price: str, ts: int | None = None) -> None:
    market.market.apply_trade(Trade(symbol, Decimal(price), Decimal("0.01"), "BUY", ts or now_ms() + 1000))


def price_of(message: dict[str, Any]) -> tuple[str, str]:
    return message["data"]["symbol"], message["data"]["price"]


# ---- handshake -----------------------------------------------------------------------------------------------


async def test_connected_comes_first_with_the_user_and_seq(base_url: str, market: Services, token: str) -> None:
    user = await market.auth.user_from_token(token)
    trade(market, "BTCUSDT", "70000.5")  # a price already known is sent right after CONNECTED
    await asyncio.sleep(0.05)
    async with websockets.connect(f"{base_url}?token={token}") as ws:
        first = await recv_json(ws)
        assert first == {"type": "CONNECTED", "data": {"user_id": user.id, "seq": 0}}
        update = await recv_json(ws)
        assert update["type"] == "PRICE_UPDATE" and price_of(update) == ("BTCUSDT", "70000.5")


async def test_connected_is_first_even_when_prices_move_during_the_handshake(
    base_url: str, market: Services, token: str
) -> None:
    read = market.db.read

    async def read_while_the_market_moves(work: Any) -> Any:
        trade(market, "BNBUSDT", "612.5")  # a price published during the handshake's database read
        return await read(work)

    market.db.read = read_while_the_market_moves  # type: ignore[method-assign]
    async with websockets.connect(f"{base_url}?token={token}") as ws:
        first = await recv_json(ws)
    assert first["type"] == "CONNECTED"


async def test_missing_or_invalid_token_closes_with_1008(base_url: str) -> None:
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"  # well-formed JWT, wrong signature
    for query in ("", "?token=", "?token=not-a-jwt", f"?token={forged}"):
        async with websockets.connect(base_url + query) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, query


# ---- prices ----------------------------------------------------------------------------------------------------


async def test_price_update_after_a_trade(connect: Callable[..., Any], market: Services) -> None:
    ws = await connect()
    await sync(ws)
    ts = now_ms() + 1000
    trade(market, "ETHUSDT", "3456.78", ts)
    message = (await recv_until(ws, "PRICE_UPDATE"))[0]
    while price_of(message) != ("ETHUSDT", "3456.78"):
        message = (await recv_until(ws, "PRICE_UPDATE"))[0]
    assert set(message) == {"type", "data"} and set(message["data"]) == PRICE_KEYS
    assert message["data"]["ts"] == ts
    ticker = market.market.ticker("ETHUSDT")
    assert ticker is not None
    assert Decimal(message["data"]["bid"]) == ticker.bid and Decimal(message["data"]["ask"]) == ticker.ask
    assert Decimal(message["data"]["change_24h_pct"]) == ticker.change_24h_pct


async def test_subscribe_and_unsubscribe_filter_symbols(connect: Callable[..., Any], market: Services) -> None:
    ws = await connect()
    await ws.send(json.dumps({"type": "UNSUBSCRIBE", "symbols": ["BTCUSDT", "eth/usdt"]}))
    await sync(ws)
    for symbol in SYMBOLS:
        trade(market, symbol, "101.5")
    await asyncio.sleep(0.05)
    received = {price_of(m)[0] for m in await sync(ws) if m["type"] == "PRICE_UPDATE"}
    received |= {price_of(m)[0] for m in await sync(ws) if m["type"] == "PRICE_UPDATE"}
    assert received == {"BNBUSDT", "SOLUSDT", "XRPUSDT"}

    await ws.send(json.dumps({"type": "SUBSCRIBE", "symbols": ["btc/usdt"]}))  # input is normalised
    await sync(ws)
    trade(market, "BTCUSDT", "202.25")
    trade(market, "ETHUSDT", "303.75")
    await asyncio.sleep(0.05)
    updates = [price_of(m) for m in await sync(ws) + await sync(ws) if m["type"] == "PRICE_UPDATE"]
    assert updates == [("BTCUSDT", "202.25")]


async def test_ping_pong(connect: Callable[..., Any]) -> None:
    ws = await connect()
    await ws.send(json.dumps({"type": "PING"}))
    pong, _ = await recv_until(ws, "PONG")
    assert pong == {"type": "PONG"}


BAD_MESSAGES = [
    ("{not json", "MALFORMED_MESSAGE"),
    ("[1, 2]", "MALFORMED_MESSAGE"),
    ('"PING"', "MALFORMED_MESSAGE"),
    ('{"type": "DANCE"}', "UNKNOWN_TYPE"),
    ("{}", "UNKNOWN_TYPE"),
    ('{"type": "SUBSCRIBE", "symbols": ["NOPEUSDT"]}', "UNKNOWN_SYMBOL"),
    ('{"type": "UNSUBSCRIBE", "symbols": "BTCUSDT"}', "INVALID_SYMBOLS"),
    ('{"type": "SUBSCRIBE", "symbols": [1]}', "INVALID_SYMBOLS"),
    ('{"type": "SUBSCRIBE"}', "INVALID_SYMBOLS"),
    ('{"type": "RESUME", "since_seq": -1}', "INVALID_SEQ"),
]


async def test_bad_messages_get_an_error_and_the_socket_stays_open(
    connect: Callable[..., Any], market: Services
) -> None:
    ws = await connect()
    for raw, code in BAD_MESSAGES:
        await ws.send(raw)
        error, _ = await recv_until(ws, "ERROR")
        assert set(error) == {"type", "data"} and set(error["data"]) == {"code", "message"}
        assert (error["data"]["code"], bool(error["data"]["message"])) == (code, True), raw
    await sync(ws)  # still answering
    trade(market, "SOLUSDT", "155.55")
    message = (await recv_until(ws, "PRICE_UPDATE"))[0]
    while price_of(message) != ("SOLUSDT", "155.55"):
        message = (await recv_until(ws, "PRICE_UPDATE"))[0]


# ---- coalescing --------------------------------------------------------------------------------------------------


def server_session(market: Services) -> SocketSession:
    """The server-side session of the single open socket (its price callback is a bound method)."""
    sessions = {getattr(cb, "__self__", None) for cb in market.bus._price_subscribers}
    sessions.discard(None)
    assert len(sessions) == 1
    return cast(SocketSession, sessions.pop())


async def stalled_client(connect: Callable[..., Any], server: uvicorn.Server) -> ClientConnection:
    """A client that reads only when the test says so: websockets stops draining its socket once 1 message is
    queued. Small socket buffers on both ends (fixed sizes turn off the kernel's autotuning, which would grow the
    server's send buffer to megabytes) make TCP push back on the server after a few hundred messages."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: it sets the TCP window
    sock.setblocking(False)
    port = server.servers[0].sockets[0].getsockname()[1]
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = cast(ClientConnection, await connect(max_queue=1, sock=sock))
    for connection in server.server_state.connections:  # only this test's sockets are open
        server_socket = connection.transport.get_extra_info("socket")
        if server_socket is not None:
            server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    await sync(ws)
    return ws


async def test_slow_client_gets_the_newest_price_per_symbol_not_a_backlog(
    connect: Callable[..., Any], market: Services, server: uvicorn.Server
) -> None:
    ws = await stalled_client(connect, server)
    session = server_session(market)

    ts = now_ms() + 1000
    newest: dict[str, str] = {}
    peak = 0

    def publish(turn: int) -> None:
        for i, symbol in enumerate(SYMBOLS):
            price = f"{turn}.{i + 1}"  # the turn is readable from the price; no trailing zero ("1000.5")
            trade(market, symbol, price, ts + turn)
            newest[symbol] = price

    # Phase 1: publish until the server cannot send any more (kernel buffers full, client not reading): even
    # after a pause the session still holds undelivered prices, so its sender is stuck waiting on the socket.
    turn = 1
    while True:
        for _ in range(200):
            publish(turn)
            await asyncio.sleep(0)  # one event-loop turn: the publisher flushes, the session's sender may run
            peak = max(peak, len(session.prices))
            turn += 1
        await asyncio.sleep(0.05)
        if session.prices:
            break
        assert turn < 100_000, "the server never ran into back-pressure"
    blocked_from = turn
    # Phase 2: a backlog of 10,000 more updates while the client still does not read.
    for _ in range(2000):
        publish(turn)
        await asyncio.sleep(0)
        peak = max(peak, len(session.prices))
        assert len(session.events) == 0 and len(session.control) <= 1
        turn += 1
    assert peak <= len(SYMBOLS)  # the per-socket price buffer is one slot per symbol, whatever the rate

    # Now read everything: the backlog collapsed to the newest price per symbol.
    latest: dict[str, str] = {}
    from_backlog = 0
    while latest != newest:
        message = await recv_json(ws, timeout=10)
        if message["type"] == "PRICE_UPDATE":
            symbol, price = price_of(message)
            latest[symbol] = price
            from_backlog += int(price.split(".")[0]) >= blocked_from
    assert from_backlog <= len(SYMBOLS) + 1, from_backlog  # +1: the message in flight when the buffers filled
    assert len(session.prices) == 0


async def test_a_client_that_never_reads_cannot_grow_server_memory(
    connect: Callable[..., Any], market: Services, server: uvicorn.Server
) -> None:
    """Whatever arrives for a socket whose client never reads (prices, its own requests' replies, user events),
    the session's buffers stay within fixed bounds; the socket is not dropped, and it is still served later.
    Below the session, the server's send waits for the socket to drain (that is why the buffers fill at all), so
    the transport's buffer is bounded too."""
    ws = await stalled_client(connect, server)
    session = server_session(market)
    user_id = session.user_id
    ts = now_ms() + 1000
    # Real account events: stored in the log (numbered 1..n at commit), then published one by one below.
    stored = 0
    data = {"account_id": "paper", "balances": []}

    async def store(count: int) -> None:
        nonlocal stored

        def append(db_session: Session) -> None:
            for _ in range(count):
                event_log.append(db_session, user_id, "BALANCE_UPDATE", json.dumps(data), ts)

        await market.db.write(append)
        stored += count

    await store(4_000)

    def buffered() -> tuple[int, int, int]:
        return len(session.prices), len(session.control), len(session.events)

    def flood(turn: int) -> None:
        for symbol in SYMBOLS:
            trade(market, symbol, f"{turn}.5", ts + turn)
        if turn <= stored:
            market.bus.publish_user(UserEvent(user_id, turn, "BALANCE_UPDATE", data))

    async def requests(count: int) -> None:
        for _ in range(count):  # a client that writes but never reads: every request makes a reply to send
            await ws.send('{"type": "PING"}')
            await ws.send("{not json")

    # Until the server cannot send any more (the sender waits on the socket, so the buffers start to fill)...
    turn = 1
    while not (session.prices and session.control):
        for _ in range(100):
            flood(turn)
            turn += 1
            await asyncio.sleep(0)
        await requests(20)
        await asyncio.sleep(0.02)
        assert turn < 50_000, "the server never ran into back-pressure"
    # ...then far more than any buffer holds: 3,000 more turns, each publishing a stored event (how many turns the
    # socket takes to push back depends on the kernel's buffers: 1,000 as a rule, once 1,500).
    if turn + 3_000 > stored:
        await store(turn + 3_000 - stored)
    peaks: list[tuple[int, int, int]] = []
    for _ in range(30):
        for _ in range(100):
            flood(turn)
            turn += 1
            await asyncio.sleep(0)
        await requests(20)
        peaks.append(buffered())
    assert turn > MAX_BUFFERED_EVENTS + 2_000 and stored >= turn
    assert max(p[0] for p in peaks) <= len(SYMBOLS)  # one slot per symbol
    assert max(p[1] for p in peaks) <= (session.control.maxlen or 0) == 100  # replies: the newest 100
    assert max(p[2] for p in peaks) <= MAX_BUFFERED_EVENTS  # beyond it: dropped, re-read from the durable log
    assert len(market.bus.latest_prices) == len(SYMBOLS)  # the bus keeps one price per symbol too
    assert session.replay_needed  # the event buffer did overflow (and the sender is still waiting on the socket)

    # The client finally reads: the socket is alive, no account event is lost, and the newest prices arrive.
    newest = f"{turn - 1}.5"
    seen: set[str] = set()
    seqs: list[int] = []
    while seen != set(SYMBOLS) or len(seqs) < turn - 1:
        message = await recv_json(ws, timeout=10)
        if message["type"] == "PRICE_UPDATE" and message["data"]["price"] == newest:
            seen.add(message["data"]["symbol"])
        elif message["type"] == "BALANCE_UPDATE":
            seqs.append(message["seq"])
    # Each event once, in order, none missing. A replay reads the durable log, which already holds events not yet
    # published (all `stored` of them), so it may deliver beyond the last published one before the prices arrive.
    assert seqs == list(range(1, len(seqs) + 1))
    assert turn - 1 <= len(seqs) <= stored
    # Read the replies still queued (up to a marked one), so the closing handshake is not stuck behind them.
    await ws.send(json.dumps({"type": "SUBSCRIBE", "symbols": ["DRAINUSDT"]}))
    while "DRAINUSDT" not in str((await recv_until(ws, "ERROR"))[0]["data"]["message"]):
        pass

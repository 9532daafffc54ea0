"""WebSocket order events over a real server: per-user delivery, seq order, RESUME with no gaps, slow readers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from app.services import Services
from storage.repositories import events
from tests.factories import place, register, wait_for_status

pytestmark = pytest.mark.usefixtures("running")  # the execution engine runs behind the server


async def next_of(socket_: Any, *types: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of one of `types` (prices interleave freely)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket_.recv())
            if message["type"] in types:
                return message  # type: ignore[no-any-return]


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_connected_first_then_order_fill_and_balance_events(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    async with websockets.connect(f"ws://{server}/ws?token={token(alice)}") as ws:
        connected = json.loads(await ws.recv())
        assert connected["type"] == "CONNECTED" and connected["data"]["seq"] == 0
        order = (await place(http, alice)).json()
        events = [await next_of(ws, "ORDER_UPDATE", "FILL", "BALANCE_UPDATE") for _ in range(4)]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["type"] for e in events] == ["ORDER_UPDATE", "FILL", "ORDER_UPDATE", "BALANCE_UPDATE"]
    assert events[0]["data"]["status"] == "PENDING" and events[2]["data"]["status"] == "FILLED"
    assert events[1]["data"]["order_id"] == order["id"]
    assert {b["asset"] for b in events[3]["data"]["balances"]} == {"BTC", "USDT"}


async def test_every_socket_of_the_user_gets_events_and_nobody_else(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    _, bob = await register(http)
    async with (
        websockets.connect(f"ws://{server}/ws?token={token(alice)}") as tab1,
        websockets.connect(f"ws://{server}/ws?token={token(alice)}") as tab2,
        websockets.connect(f"ws://{server}/ws?token={token(bob)}") as bobs,
    ):
        for ws in (tab1, tab2, bobs):
            await next_of(ws, "CONNECTED")
        order = (await place(http, alice)).json()
        for ws in (tab1, tab2):
            assert (await next_of(ws, "ORDER_UPDATE"))["data"]["id"] == order["id"]
        await wait_for_status(http, alice, order["id"], "FILLED")
        await bobs.send(json.dumps({"type": "PING"}))
        # Bob's socket carries prices and his PONG, never Alice's events.
        async with asyncio.timeout(5):
            while (message := json.loads(await bobs.recv()))["type"] != "PONG":
                assert message["type"] == "PRICE_UPDATE", message


async def test_resume_replays_everything_after_the_last_seen_seq(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    first = (await place(http, alice)).json()
    await wait_for_status(http, alice, first["id"], "FILLED")
    second = (await place(http, alice, side="SELL", quantity="0.005")).json()
    await wait_for_status(http, alice, second["id"], "FILLED")
    async with websockets.connect(f"ws://{server}/ws?token={token(alice)}") as ws:
        latest = (await next_of(ws, "CONNECTED"))["data"]["seq"]
        assert latest == 8
        await ws.send(json.dumps({"type": "RESUME", "since_seq": 2}))
        replayed = [await next_of(ws, "ORDER_UPDATE", "FILL", "BALANCE_UPDATE") for _ in range(latest - 2)]
        assert [e["seq"] for e in replayed] == list(range(3, latest + 1))
        third = (await place(http, alice)).json()
        live = await next_of(ws, "ORDER_UPDATE")
        assert live["seq"] == latest + 1 and live["data"]["id"] == third["id"]


async def test_a_client_that_stops_reading_still_gets_every_event_in_order(
    server: str, http: httpx.AsyncClient, running: Services
) -> None:
    alice_id, alice = await register(http)
    async with websockets.connect(f"ws://{server}/ws?token={token(alice)}", max_queue=1) as ws:
        await next_of(ws, "CONNECTED")
        ids = [(await place(http, alice, quantity="0.0001")).json()["id"] for _ in range(40)]
        await running.engine.drain()
        last_seq = await running.db.read(lambda s: events.latest_seq(s, alice_id))
        assert last_seq >= 40 * 3  # NEW, FILL, FILLED per order, plus balance updates (one per account per batch)
        seqs = []
        async with asyncio.timeout(15):
            while len(seqs) < last_seq:
                message = json.loads(await ws.recv())
                if "seq" in message:
                    seqs.append(message["seq"])
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(ids) == 40


@pytest.mark.parametrize("query", ["", "?token=", "?token=garbage"])
async def test_bad_tokens_close_with_1008(server: str, query: str) -> None:
    async with websockets.connect(f"ws://{server}/ws{query}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_bad_messages_get_an_error_and_the_socket_stays_open(server: str, http: httpx.AsyncClient) -> None:
    _, alice = await register(http)
    async with websockets.connect(f"ws://{server}/ws?token={token(alice)}") as ws:
        await next_of(ws, "CONNECTED")
        for bad in ("not json", "[1]", '{"type": "DANCE"}', '{"type": "RESUME", "since_seq": -1}'):
            await ws.send(bad)
            assert (await next_of(ws, "ERROR"))["data"]["code"]
        await ws.send(json.dumps({"type": "PING"}))
        assert (await next_of(ws, "PONG"))["type"] == "PONG"


class RecordingSocket:
    """Stands in for the WebSocket: records what the session sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def test_buffer_overflow_falls_back_to_the_log_without_losing_events(
    running: Services, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api import ws as ws_module
    from app.events import UserEvent

    monkeypatch.setattr(ws_module, "MAX_BUFFERED_EVENTS", 5)
    user_id, alice = await register(client)
    for _ in range(5):
        await place(client, alice, quantity="0.0001")
    await running.engine.drain()
    # How many events 5 orders make depends on how the engine batched them (one balance update per batch).
    logged = await running.db.read(lambda s: events.latest_seq(s, user_id))
    assert logged > 5
    fake = RecordingSocket()
    session = ws_module.SocketSession(fake, user_id, running)  # type: ignore[arg-type]
    session.symbols = set()
    for seq in range(1, logged + 1):  # live events arrive while the sender is not running: the buffer overflows
        session._on_event(UserEvent(user_id, seq, "ORDER_UPDATE", {"n": seq}))
    assert len(session.events) <= 5 and session.replay_needed
    sender = asyncio.create_task(session._send_loop())
    async with asyncio.timeout(5):
        while len(fake.sent) < logged:
            await asyncio.sleep(0.01)
    sender.cancel()
    assert [m["seq"] for m in fake.sent] == list(range(1, logged + 1))  # every event once, in order, from the log


async def test_an_event_ahead_of_the_log_is_dropped_not_spun_on(
    running: Services, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    from app.api import ws as ws_module
    from app.events import UserEvent

    user_id, alice = await register(client)
    await place(client, alice, quantity="0.0001")
    await running.engine.drain()
    last = await running.db.read(lambda s: events.latest_seq(s, user_id))
    fake = RecordingSocket()
    session = ws_module.SocketSession(fake, user_id, running)  # type: ignore[arg-type]
    session.symbols = set()
    session._on_event(UserEvent(user_id, last + 5, "ORDER_UPDATE", {"phantom": True}))  # never stored
    sender = asyncio.create_task(session._send_loop())
    async with asyncio.timeout(5):
        while "ahead of the log" not in caplog.text:
            await asyncio.sleep(0.01)
    session._on_event(UserEvent(user_id, last + 6, "ORDER_UPDATE", {"phantom": True}))
    await asyncio.sleep(0.1)
    sender.cancel()
    assert [m["seq"] for m in fake.sent] == list(range(1, last + 1))  # the log's events, then nothing invented

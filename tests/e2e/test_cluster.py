"""CLUSTER mode for real: replicas of `python main.py` sharing PostgreSQL and Redis, accounts partitioned between
them by leases. kill -9 of a replica in the middle of a burst, and a replica paused (SIGSTOP) past its lease and
then resumed: every acknowledged order is executed exactly once, balances add up, events stay gap-free per user.
The takeover time is printed (`pytest -s`)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from playwright.async_api import async_playwright, expect
from sqlalchemy import text

from app.cluster.partitions import partition_of
from storage.db import create_db_engine
from tests.conftest import BACKEND
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_binance_crash import ORDER_PATH, status_of
from tests.e2e.test_crash_recovery import register_users, verify_database
from tests.factories import PASSWORD, unique_email
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="CLUSTER mode runs on PostgreSQL (docs/scaling.md)")

REDIS_URL = "redis://127.0.0.1:6379/0"
PARTITIONS = 8
CONCURRENCY = 16
WAIT = 20_000  # ms, upper bound for a loaded machine
BALANCES = "USDT:10000,BTC:1"  # tests/e2e/test_crash_recovery.py's money invariant starts from these


async def burst(
    urls: list[str], tokens: list[str], orders: int, kill_after: int | None = None, on_kill: Any = None
) -> dict[str, str]:
    """Mixed orders (and some cancels) spread over the replicas; after `kill_after` acknowledgements `on_kill()`
    runs once, and requests that fail (the dead replica) go to the others. Returns acknowledged id -> token."""
    acked: dict[str, str] = {}
    alive = list(urls)
    rng = random.Random(orders)
    jobs = list(range(orders))
    killed = False

    async def worker(clients: dict[str, httpx.AsyncClient]) -> None:
        nonlocal killed
        while jobs and alive:
            n = jobs.pop()
            url = alive[n % len(alive)]
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
            body: dict[str, Any] = {"symbol": "BTCUSDT", "side": rng.choice(["BUY", "SELL"]), "quantity": "0.0001"}
            if rng.random() < 0.6:
                body["type"] = "MARKET"
            else:
                body.update(type="LIMIT", price=str(60000 + rng.randint(-3000, 3000)))
            try:
                response = await clients[url].post("/api/trading/orders", json=body, headers=headers)
            except httpx.HTTPError:
                if url in alive:
                    alive.remove(url)  # it died: the others take the rest
                continue
            if response.status_code in (200, 202):
                order_id = response.json()["id"]
                acked[order_id] = headers["Authorization"]
                if rng.random() > 0.85:
                    other = alive[(n + 1) % len(alive)]  # cancelled through another replica
                    with _quietly():
                        await clients[other].delete(f"/api/trading/orders/{order_id}", headers=headers)
            if kill_after is not None and len(acked) >= kill_after and not killed:
                killed = True
                on_kill()

    clients = {url: httpx.AsyncClient(base_url=url, timeout=30) for url in urls}
    try:
        await asyncio.gather(*(worker(clients) for _ in range(CONCURRENCY)))
    finally:
        for client in clients.values():
            await client.aclose()
    return acked


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], httpx.HTTPError)  # type: ignore[arg-type]


def pending_count(url: str) -> int:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM orders WHERE status = 'PENDING'")).scalar_one())
    finally:
        engine.dispose()


async def wait_until_settled(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while pending_count(url) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert pending_count(url) == 0, "PENDING orders were left after the takeover"


async def health(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return (await client.get("/health")).json()  # type: ignore[no-any-return]


async def wait_for_partitions(urls: list[str], owned: set[int], timeout: float = 60, *, shared: bool = True) -> float:
    """Wait until the replicas at `urls` together hold the partitions `owned` (and, with `shared`, each holds
    some: the first replica up takes them all, then gives its surplus to the others); returns the seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        each = [set((await health(url))["partitions"] or ()) for url in urls]
        if owned <= set().union(*each) and (not shared or all(each)):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"partitions {sorted(owned)} were not taken over")


@pytest.mark.timeout(300)
async def test_kill_9_of_a_partition_owner_in_a_burst_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    cluster = Cluster(tmp_path, 3, database_url, REDIS_URL, PAPER_BALANCES=BALANCES)
    cluster.start()
    try:
        urls = [replica.url for replica in cluster.replicas]
        await wait_for_partitions(urls, set(range(PARTITIONS)))
        tokens = await register_users(urls[0], 6)
        victim = cluster.replicas[0]
        victim_partitions: set[int] = set()
        killed_at = 0.0

        def kill() -> None:
            nonlocal killed_at
            killed_at = time.monotonic()
            victim.kill()

        victim_partitions.update((await health(victim.url))["partitions"])
        assert victim_partitions, "the first replica holds some partitions"
        acked = await burst(urls, tokens, 600, kill_after=250, on_kill=kill)
        survivors = urls[1:]
        await wait_for_partitions(survivors, set(range(PARTITIONS)), shared=False)
        print(f"takeover: the survivors held every partition {time.monotonic() - killed_at:.2f} s after kill -9")
        await wait_until_settled(database_url)
        assert len(acked) >= 500
        verify_database(database_url, acked)
    finally:
        cluster.kill()


@pytest.mark.timeout(300)
async def test_a_replica_paused_past_its_lease_commits_nothing_after_it_resumes(
    tmp_path: Path, database_url: str
) -> None:
    cluster = Cluster(tmp_path, 2, database_url, REDIS_URL, PAPER_BALANCES=BALANCES)
    cluster.start()
    try:
        a, b = cluster.replicas
        await wait_for_partitions([a.url, b.url], set(range(PARTITIONS)))
        a_partitions = set((await health(a.url))["partitions"])
        tokens = await register_users(b.url, 8)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as client:
            accounts = [
                (await client.get("/api/accounts", headers={"Authorization": f"Bearer {t}"})).json()[0]["id"]
                for t in tokens
            ]
        on_a = [
            t for t, account in zip(tokens, accounts, strict=True) if partition_of(account, PARTITIONS) in a_partitions
        ]
        assert on_a, "some user's account is in a partition A holds"

        # A burst for A's accounts, sent to A; A is paused in the middle of it.
        first = asyncio.create_task(burst([a.url], on_a, 200))
        await asyncio.sleep(0.3)
        cluster.pause(a)
        await wait_for_partitions([b.url], set(range(PARTITIONS)))  # B takes A's partitions after their leases end
        second = await burst([b.url], on_a, 100)  # ... and executes new orders of the same accounts
        cluster.resume(a)
        acked = {**await first, **second}
        await wait_for_partitions([a.url, b.url], set(range(PARTITIONS)))
        await wait_until_settled(database_url)
        verify_database(database_url, acked)
        log = a.log.read_text()
        assert "lost partition" in log or "partition lease lost" in log  # A noticed it no longer owned them
    finally:
        cluster.kill()


@pytest.mark.timeout(180)
async def test_an_order_placed_on_a_shows_on_a_socket_on_b_and_a_page_on_c(tmp_path: Path, database_url: str) -> None:
    cluster = Cluster(tmp_path, 3, database_url, REDIS_URL, PAPER_BALANCES=BALANCES)
    cluster.start()
    try:
        a, b, c = (replica.url for replica in cluster.replicas)
        await wait_for_partitions([a, b, c], set(range(PARTITIONS)))
        email = unique_email("cluster")
        async with httpx.AsyncClient(base_url=a, timeout=30) as api:
            registered = await api.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201
            headers = {"Authorization": f"Bearer {registered.json()['token']}"}
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1600, "height": 1000})
                    await page.goto(f"{c}/login")
                    await page.get_by_label("Email").fill(email)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Log in").click()
                    await page.wait_for_url("**/trade/BTCUSDT", timeout=WAIT)
                    await page.get_by_role("tab", name="Order history").click()
                    async with websockets.connect(
                        f"{b.replace('http', 'ws')}/ws?token={headers['Authorization'][7:]}"
                    ) as ws:
                        await ws.recv()  # CONNECTED
                        body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
                        placed = await api.post("/api/trading/orders", json=body, headers=headers)
                        assert placed.status_code == 202, placed.text
                        order_id = placed.json()["id"]
                        statuses = []
                        while "FILLED" not in statuses:
                            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                            if message.get("type") == "ORDER_UPDATE" and message["data"]["id"] == order_id:
                                statuses.append(message["data"]["status"])
                        assert statuses[0] == "PENDING"  # B's socket saw the order's whole life, from A's intake on
                    filled = page.locator(".ag-cell:visible", has_text="FILLED").first
                    await expect(filled).to_be_visible(timeout=WAIT)  # C's page got the fill pushed live
                finally:
                    await browser.close()
    finally:
        cluster.kill()


@pytest.mark.timeout(240)
async def test_kill_9_of_the_owner_between_send_and_ack_never_sends_twice(tmp_path: Path, database_url: str) -> None:
    async with FakeBinance.start() as fake:
        urls = {
            "BINANCE_TESTNET_URL": fake.rest_url,
            "BINANCE_TESTNET_STREAM_URL": fake.stream_url,
            "BINANCE_TESTNET_WS_API_URL": fake.ws_api_url,
        }
        cluster = Cluster(tmp_path, 2, database_url, REDIS_URL, **urls)
        # The replicas talk to the fake served by this test's event loop: never block the loop while they start.
        await asyncio.to_thread(cluster.start)
        try:
            first, second = cluster.replicas
            await wait_for_partitions([first.url, second.url], set(range(PARTITIONS)))
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                registered = await client.post("/auth/register", json={"email": unique_email(), "password": PASSWORD})
                headers = {"Authorization": f"Bearer {registered.json()['token']}"}
                body = {"venue": "binance-testnet", "api_key": DOC_API_KEY, "api_secret": DOC_SECRET}
                account = (await client.post("/api/accounts", json=body, headers=headers)).json()
                partition = partition_of(account["id"], PARTITIONS)
                owner, survivor = (
                    (first, second) if partition in (await health(first.url))["partitions"] else (second, first)
                )

                fake.timeout_after_accept(path=ORDER_PATH, delay=120)  # executed at the exchange, answer held
                fake.mute_user_stream(DOC_API_KEY)
                order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "59000", "quantity": "0.01"}
                placed = await client.post(
                    "/api/trading/orders", json={**order, "account_id": account["id"]}, headers=headers
                )
                assert placed.status_code == 202, placed.text
                order_id = placed.json()["id"]
                async with asyncio.timeout(30):
                    while not fake.orders(DOC_API_KEY):  # the exchange has it; the owner waits for the answer
                        await asyncio.sleep(0.05)
            await asyncio.to_thread(owner.kill)
            fake.mute_user_stream(DOC_API_KEY, muted=False)

            async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as client:
                recovered = await status_of(client, headers, order_id, "OPEN", "FILLED", "REJECTED", "CANCELED")
                assert recovered["status"] == "OPEN"  # found at the exchange by client order id, not sent again
                fake.trade("BTCUSDT", "59000", "1")
                filled = await status_of(client, headers, order_id, "FILLED")
                assert filled["filled_quantity"] == "0.01" and len(filled["fills"]) == 1
        finally:
            await asyncio.to_thread(cluster.kill)

        [at_exchange] = fake.orders(DOC_API_KEY)
        assert at_exchange.client_order_id == f"tw{order_id}"
        assert len([r for r in fake.requests if r.method == "POST" and r.path == ORDER_PATH]) == 1

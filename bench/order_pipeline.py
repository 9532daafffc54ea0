"""Order pipeline benchmark (DESIGN.md §9). Prints figures beside baselines measured in the same run.

    .venv/bin/python bench/order_pipeline.py [--db sqlite|postgres] [--orders 5000]

1. raw baseline: single-row INSERT + COMMIT per row on the same database (what "one transaction per order" costs)
2. in-process pipeline: OrderService.submit (validate, store PENDING + event, enqueue) for N market orders, and
   the time until the execution engine has FILLED them all -> sustained orders/s end to end
3. HTTP: the real app as a child process; submit -> 202 latency at a paced 200 orders/s, and submit -> FILLED
   as seen on the WebSocket (p50/p99)
Machines are noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import psycopg
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def database_url(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    name = f"tradewind_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_commit_rate(kind: str, folder: Path, rows: int = 3000) -> float:
    """Rows/s for INSERT + COMMIT, one row per transaction (WAL + synchronous=NORMAL like the app)."""
    start = time.perf_counter()
    if kind == "sqlite":
        conn = sqlite3.connect(folder / "raw.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        start = time.perf_counter()
        for n in range(rows):
            conn.execute("INSERT INTO t (v) VALUES (?)", (str(n),))
            conn.commit()
        conn.close()
    else:
        with psycopg.connect(PG_ADMIN) as conn:
            conn.execute("CREATE TEMP TABLE t (id SERIAL PRIMARY KEY, v TEXT)")
            conn.commit()
            start = time.perf_counter()
            for n in range(rows):
                conn.execute("INSERT INTO t (v) VALUES (%s)", (str(n),))
                conn.commit()
    return rows / (time.perf_counter() - start)


async def in_process(url: str, folder: Path, count: int) -> tuple[float, float, float]:
    """(intake orders/s, end-to-end orders/s, CPU µs per order of all the process's threads) through the real
    services, no HTTP."""
    os.environ.update(
        DATABASE_URL=url, DATA_DIR=str(folder), MARKET_FEED_ENABLED="false", PAPER_BALANCES="USDT:100000000"
    )
    from app.config import load_settings
    from app.orders import OrderRequest
    from app.services import build_services

    services = build_services(load_settings())
    await services.engine.start()
    users = [(await services.auth.register(f"bench{n}@example.com", "correct horse battery")).id for n in range(4)]
    request = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.0001")
    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(services.orders.submit(users[n % 4], request) for n in range(count)))
    intake = time.perf_counter() - start
    await services.engine.drain()
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    filled = len(await services.orders.list_orders(users[0], status="closed", limit=1000))
    assert filled > 0
    await services.stop()
    return count / intake, count / total, cpu / count * 1e6


class App:
    def __init__(self, url: str, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DATA_DIR": str(folder),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "MARKET_FEED_ENABLED": "true",
            "PAPER_BALANCES": "USDT:100000000",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("app did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(20)


async def paced(
    session: aiohttp.ClientSession, method: str, path: str, body: object, headers: dict[str, str], rate: int, count: int
) -> list[float]:
    """Fire `count` requests at `rate`/s (open loop: the pace does not wait for answers); latencies in ms."""
    latencies: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        async with session.request(method, path, json=body, headers=headers) as response:
            await response.read()
            assert response.status < 300, response.status
        latencies.append((time.perf_counter() - t0) * 1000)

    tasks = []
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies


async def http_figures(url: str, folder: Path) -> dict[str, float]:
    app = App(url, folder)
    try:
        async with aiohttp.ClientSession(app.url) as client:
            body = {"email": "http@example.com", "password": "correct horse battery"}
            async with client.post("/auth/register", json=body) as response:
                token = (await response.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"}
            await paced(client, "POST", "/api/trading/orders", order, headers, 200, 50)  # warm-up
            # Baseline in the same run: an authenticated read through the same stack, at the same pace.
            baseline = await paced(client, "GET", "/api/accounts", None, headers, 200, 1000)
            acks = await paced(client, "POST", "/api/trading/orders", order, headers, 200, 1000)
            await asyncio.sleep(1)
            fills: list[float] = []
            async with websockets.connect(f"ws://127.0.0.1:{app.port}/ws?token={token}") as ws:
                await ws.recv()
                symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
                await ws.send(json.dumps({"type": "UNSUBSCRIBE", "symbols": symbols}))
                for _ in range(300):
                    t0 = time.perf_counter()
                    async with client.post("/api/trading/orders", json=order, headers=headers) as response:
                        order_id = (await response.json())["id"]
                    while True:
                        message = json.loads(await ws.recv())
                        data = message.get("data", {})
                        if (
                            message["type"] == "ORDER_UPDATE"
                            and data.get("id") == order_id
                            and data["status"] == "FILLED"
                        ):
                            fills.append((time.perf_counter() - t0) * 1000)
                            break
                    await asyncio.sleep(0.01)
    finally:
        app.stop()
    return {
        "base_p50": statistics.median(baseline),
        "base_p99": percentile(baseline, 0.99),
        "ack_p50": statistics.median(acks),
        "ack_p99": percentile(acks, 0.99),
        "fill_p50": statistics.median(fills),
        "fill_p99": percentile(fills, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--orders", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    raw = raw_commit_rate(args.db, folder)
    url = database_url(args.db, folder)
    try:
        intake, end_to_end = asyncio.run(in_process(url, folder, args.orders))
    finally:
        drop_database(url)
    url = database_url(args.db, folder / "http") if args.db == "postgres" else f"sqlite:///{folder / 'http.db'}"
    try:
        http = asyncio.run(http_figures(url, folder))
    finally:
        drop_database(url)
    print(f"database: {args.db}   orders: {args.orders}")
    print(f"  baseline  raw single-row INSERT+COMMIT          {raw:10.0f} rows/s")
    print(f"  pipeline  intake (store PENDING+event, enqueue) {intake:10.0f} orders/s  ({intake / raw:.3f}x raw)")
    print(
        f"  pipeline  submit -> FILLED, sustained           {end_to_end:10.0f} orders/s  ({end_to_end / raw:.3f}x raw)"
    )
    print(f"  baseline  GET /api/accounts at 200/s   p50 {http['base_p50']:.1f} ms   p99 {http['base_p99']:.1f} ms")
    print(
        f"  HTTP      submit -> 202 at 200/s      p50 {http['ack_p50']:.1f} ms   p99 {http['ack_p99']:.1f} ms"
        f"  ({http['ack_p50'] / http['base_p50']:.1f}x / {http['ack_p99'] / http['base_p99']:.1f}x baseline)"
    )
    print(f"  HTTP+WS   submit -> FILLED event      p50 {http['fill_p50']:.1f} ms   p99 {http['fill_p99']:.1f} ms")


if __name__ == "__main__":
    main()

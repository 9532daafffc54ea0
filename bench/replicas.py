"""Scale-out benchmark (issue #12, docs/scaling.md): the real app as 1, 2 and 3 replicas in CLUSTER mode on this
machine's PostgreSQL and Redis, beside the single-process SQLite app of the same run (the default deployment).

    .venv/bin/python bench/replicas.py [--orders 3000] [--replicas 1,2,3] [--connections 32] [--users 16]

For each configuration: closed-loop paper market orders from `--users` users over `--connections` connections,
spread evenly over the replicas (one load-generator process per replica) -> accepted orders/s and end-to-end
orders/s (until no order is open); then 200 orders at a paced 100/s sent to the FIRST replica, each timed until
its FILLED ORDER_UPDATE arrives on a /ws connected to the LAST replica -> submit -> FILLED p50/p99 across replicas
(the Redis fan-out included), and the server CPU per order summed over the replicas. Every figure is also printed
as a ratio of the single-process SQLite figure measured in the same run. All replicas share one 2-core machine
here, so more replicas share the same cores: read the curve as cost per order, not as a cluster's capacity
(docs/scaling.md estimates that from the CPU per order). Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_servers import (
    ROOT,
    Load,
    LoadJob,
    Server,
    database_url,
    drop_database,
    load_in_processes,
    percentile,
    register,
    until_no_open_orders,
)

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PARTITIONS = 64


def start_replicas(count: int, url: str | None, folder: Path) -> list[Server]:
    """`count` CLUSTER replicas on PostgreSQL `url`, or (url None) one default single-process SQLite app."""
    env = {"MARKET_FEED_ENABLED": "true", "PAPER_BALANCES": "USDT:100000000", "DATA_DIR": str(folder)}
    if url is None:
        return [Server([str(ROOT / "main.py")], {**env, "DATABASE_URL": f"sqlite:///{folder / 'single.db'}"})]
    shared = {
        **env,
        "DATABASE_URL": url,
        "CLUSTER": "true",
        "REDIS_URL": REDIS_URL,
        "REDIS_CHANNEL_PREFIX": f"twbench-{os.getpid()}-{count}:",
        "CLUSTER_PARTITIONS": str(PARTITIONS),
        "JWT_SECRET": secrets.token_urlsafe(32),
        "STORAGE_SECRET": secrets.token_urlsafe(32),
        "ENCRYPTION_KEY": secrets.token_urlsafe(32),
    }
    servers = []
    for n in range(count):
        data_dir = folder / f"replica-{count}-{n}"
        data_dir.mkdir(parents=True, exist_ok=True)
        servers.append(Server([str(ROOT / "main.py")], {**shared, "DATA_DIR": str(data_dir)}))
    return servers


async def partitions_held(servers: list[Server]) -> int:
    held: set[int] = set()
    async with aiohttp.ClientSession() as client:
        for server in servers:
            async with client.get(f"{server.url}/health") as response:
                held |= set((await response.json()).get("partitions") or ())
    return len(held)


def spread_load(servers: list[Server], tokens: list[str], count: int, connections: int) -> Load:
    """Closed-loop order POSTs, one generator process per replica, connections and orders split evenly."""
    n = len(servers)
    start_at = time.time() + 2.0
    jobs: list[LoadJob] = [
        (s.url, "/api/trading/orders", list(tokens), count // n, max(1, connections // n), i, start_at)
        for i, s in enumerate(servers)
    ]
    return load_in_processes(jobs)


async def fill_latency(first: Server, last: Server, token: str, count: int = 200, rate: int = 100) -> list[float]:
    """Submit on `first` at `rate`/s; ms until each order's FILLED arrives on a /ws of `last`."""
    ws_url = last.url.replace("http://", "ws://") + f"/ws?token={token}"
    sent: dict[str, float] = {}
    filled: dict[str, float] = {}  # a FILLED can arrive before the 202 of its POST
    async with websockets.connect(ws_url) as ws:
        await ws.recv()  # CONNECTED
        symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
        await ws.send(json.dumps({"type": "UNSUBSCRIBE", "symbols": symbols}))

        async def listen() -> None:
            while len(sent) < count or any(order_id not in filled for order_id in sent):
                message = json.loads(await ws.recv())
                data = message.get("data") or {}
                if message.get("type") == "ORDER_UPDATE" and data.get("status") == "FILLED":
                    filled[data["id"]] = time.perf_counter()

        listener = asyncio.create_task(listen())
        body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"}
        async with aiohttp.ClientSession(first.url) as client:
            start = time.perf_counter()
            for n in range(count):
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
                t0 = time.perf_counter()
                async with client.post(
                    "/api/trading/orders", json=body, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    sent[(await response.json())["id"]] = t0
        await asyncio.wait_for(listener, 60)
    return [(filled[order_id] - t0) * 1000 for order_id, t0 in sent.items()]


def measure(count: int, url: str | None, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    servers = start_replicas(count, url, folder)
    try:
        if url is not None:
            deadline = time.time() + 60
            while asyncio.run(partitions_held(servers)) < PARTITIONS and time.time() < deadline:
                time.sleep(0.2)
        run = f"{os.getpid()}-{count}-{int(time.time())}"
        tokens = asyncio.run(register(servers[0].url, [f"r{n}-{run}@example.com" for n in range(args.users)]))
        spread_load(servers, tokens, 200 * count, args.connections)  # warm-up
        asyncio.run(until_no_open_orders(servers[0].url, tokens))
        cpu = sum(s.cpu_seconds() for s in servers)
        load = spread_load(servers, tokens, args.orders, args.connections)
        done = asyncio.run(until_no_open_orders(servers[0].url, tokens))
        server_cpu = sum(s.cpu_seconds() for s in servers) - cpu
        latencies = asyncio.run(fill_latency(servers[0], servers[-1], tokens[0]))
        return {
            "accepted": load.ok / (load.end - load.start),
            "e2e": load.ok / (done - load.start),
            "errors": load.errors,
            "cpu_us": server_cpu / max(1, load.ok) * 1e6,
            "fill_p50": percentile(latencies, 0.5),
            "fill_p99": percentile(latencies, 0.99),
        }
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=16)
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tw-bench-replicas-") as tmp:
        folder = Path(tmp)
        results["single process, SQLite"] = measure(1, None, folder, args)
        for count in counts:
            url = database_url("postgres", folder, f"replicas{count}")
            try:
                results[f"{count} replica{'s' if count > 1 else ''}, PostgreSQL + Redis"] = measure(
                    count, url, folder, args
                )
            finally:
                drop_database(url)
    base = results["single process, SQLite"]
    print(f"\n{args.orders} paper market orders, {args.users} users, {args.connections} connections; this machine")
    print(
        f"{'configuration':38} {'accepted/s':>11} {'end-to-end/s':>13} {'× single':>9} {'CPU µs/order':>13}"
        f" {'FILLED p50/p99 ms (A→ws on last)':>34}"
    )
    for name, r in results.items():
        print(
            f"{name:38} {r['accepted']:11.0f} {r['e2e']:13.0f} {r['e2e'] / base['e2e']:8.2f}× {r['cpu_us']:13.0f}"
            f" {r['fill_p50']:16.1f} / {r['fill_p99']:.1f}" + (f"  ({r['errors']:.0f} errors)" if r["errors"] else "")
        )


if __name__ == "__main__":
    main()

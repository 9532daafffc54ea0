"""Hot reads benchmark (docs/orders.md, "Speed": the hot reads): what the GETs that bots and open pages poll cost,
beside a bare FastAPI GET measured in the same run.

    .venv/bin/python bench/reads.py [--db sqlite|postgres] [--requests 5000] [--connections 32] [--users 16]

The real app (main.py) runs as a child process on a fresh database; `--users` users register, and each places
three resting limit orders and one market order (so every read has rows: two balances, a position, open orders,
an order with a fill). Then each read is sent `--requests` times by the closed-loop generator of
bench/order_pipeline.py (`--connections` keep-alive connections, users round-robin): the account listing, the
balances, the positions, the open orders, and one order by id (with its fills; one user's order). Baseline:
bench/bare_app.py's `GET /balances` (a small JSON list through FastAPI's response model, no authentication, no
database), measured before and after the app. Each line prints requests/s, the server's CPU per request (from
/proc, all its threads: the figure to compare between runs) and the ratio of that CPU to the bare GET's.
Timings are never asserted in tests; read the ratios, not the absolute figures (2 shared cores).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from bench_servers import (
    Load,
    Server,
    closed_loop,
    database_url,
    drop_database,
    register,
    start_app,
    start_bare,
)

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "time_in_force": "GTC"}
MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}


async def place_orders(base: str, tokens: list[str]) -> str:
    """Three resting limit orders and one market order per user; the first user's market order id, once FILLED."""
    first = ""
    async with aiohttp.ClientSession(base) as client:
        for n, token in enumerate(tokens):
            headers = {"Authorization": f"Bearer {token}"}
            for price in ("1000", "1001", "1002"):
                async with client.post("/api/trading/orders", json={**LIMIT, "price": price}, headers=headers) as r:
                    assert r.status == 202, await r.text()
            async with client.post("/api/trading/orders", json=MARKET, headers=headers) as response:
                assert response.status == 202, await response.text()
                order_id = (await response.json())["id"]
            if n == 0:
                first = order_id
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        for _ in range(200):
            async with client.get(f"/api/trading/orders/{first}", headers=headers) as response:
                if (await response.json())["status"] == "FILLED":
                    return first
            await asyncio.sleep(0.05)
    raise RuntimeError("the market order did not fill")


def measure(server: Server, path: str, tokens: list[str | None], requests: int, connections: int) -> Load:
    closed_loop(server.url, f"GET {path}", tokens, min(requests, 500), connections)  # warm up
    cpu = server.cpu_seconds()
    load = closed_loop(server.url, f"GET {path}", tokens, requests, connections)
    load.server_cpu = server.cpu_seconds() - cpu
    assert load.errors == 0, f"{path}: {load.errors} errors"
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=16)
    args = parser.parse_args()
    started = time.time()
    bare_before = measure_bare(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = database_url(args.db, folder, "reads")
        app = start_app(url, folder)
        try:
            tokens: list[str | None] = list(
                asyncio.run(register(app.url, [f"reader{n}@example.com" for n in range(args.users)]))
            )
            order_id = asyncio.run(place_orders(app.url, [t for t in tokens if t]))
            reads = [
                ("/api/accounts", tokens),
                ("/api/trading/balances", tokens),
                ("/api/trading/positions", tokens),
                ("/api/trading/orders?status=open", tokens),
                (f"/api/trading/orders/{order_id}", tokens[:1]),
            ]
            loads = [(path, measure(app, path, who, args.requests, args.connections)) for path, who in reads]
        finally:
            app.stop()
            if args.db == "postgres":
                drop_database(url)
    bare_after = measure_bare(args)
    bare_us = (bare_before.server_us + bare_after.server_us) / 2
    print(f"database: {args.db}   requests: {args.requests}   users: {args.users}   ({time.time() - started:.0f} s)")
    for label, bare in (("before", bare_before), ("after ", bare_after)):
        figures = f"{bare.rate:8,.0f} req/s   server CPU {bare.server_us:5.0f} µs/req"
        print(f"  baseline  bare GET /balances ({label})         {figures}")
    for path, load in loads:
        shown = path if len(path) < 40 else path[:29] + "…" + path[-8:]
        ratio = load.server_us / bare_us
        figures = f"{load.rate:8,.0f} req/s   server CPU {load.server_us:5.0f} µs/req ({ratio:.1f}x bare)"
        print(f"  app       GET {shown:38s} {figures}")


def measure_bare(args: argparse.Namespace) -> Load:
    bare = start_bare()
    try:
        return measure(bare, "/balances", [None], args.requests, args.connections)
    finally:
        bare.stop()


if __name__ == "__main__":
    main()

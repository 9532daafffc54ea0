"""Order pipeline benchmark (DESIGN.md §9, docs/orders.md "Speed"): the execution-core issue's targets, each printed
beside the baseline it is defined on, measured in the same run.

    .venv/bin/python bench/order_pipeline.py [--db sqlite|postgres] [--orders 5000] [--only inprocess|http|load]
                                             [--clients 1] [--connections 32] [--users 16] [--rounds 3]
                                             [--py-spy out.svg]

Parts (`--only` may be repeated; default: all three, about 3 minutes on SQLite on a busy 2-core VM):

inprocess  No HTTP. Baselines: raw single-row INSERT + COMMIT on the same database (what "one transaction per
           order" costs), and the storage floor (bench/storage_floor.py): the rows one paper market order writes,
           alone, through the app's write path -- 500 orders per transaction pair, one, and one order from each
           of `--users` users (what a commit holds under the load part's closed loop). Then the real
           services (OrderService.submit -> execution engine) for N paper market orders from 4 users, after
           N/10 of them as warm-up (the steady state, as bench/ab_inprocess.py measures it):
           intake orders/s (stored PENDING + event, enqueued), sustained submit -> FILLED orders/s (until the
           engine has drained), and CPU µs per order (all threads of this process); then the same orders each
           with its own client order id, as careful bots send them (intake looks each one up before storing it).
http       The real app (main.py) as a child process. Baseline: GET /api/accounts (authenticated read, same stack)
           at a paced 200/s; then POST /api/trading/orders at a paced 200/s (open loop) -> submit -> 202 p50/p99;
           then (once those are filled) 300 orders one at a time, each timed until its FILLED ORDER_UPDATE arrives
           on /ws -> p50/p99. Each paced line also prints the rate actually answered: below 200/s the server was
           saturated and the latencies are queueing (flagged with "!!"); the 2x-baseline ratio then says little.
load       Closed-loop throughput with one load generator for both servers: `--connections` (32) keep-alive
           connections, each sending its next request when the previous answer arrived, N requests in all.
           Baseline: bench/bare_app.py (one FastAPI JSON POST, same uvicorn settings as NiceGUI's ui.run) -> req/s.
           The app's orders run in `--rounds` (3) rounds with a bare run before, between and after them; each
           round's ratio is to the mean of the bare runs on either side of it (the machine's speed at that moment),
           and the target is judged on the median round (a single round flipped the verdict with the minute's
           noise; every round's ratio is printed). The app: `--users` (16) registered users round-robin, paper
           MARKET BUY BTCUSDT 0.0001 -> accepted orders/s (202s per second until the last 202) and end-to-end
           orders/s (until every user's GET /api/trading/orders?status=open is empty, polled every 50 ms only
           after the last 202), and both as a ratio of the bare req/s. Also on the app: its idle CPU (market
           simulation, timers) and GET /api/accounts under the same load (the app's stack + auth + one read, no
           order work).
           Every load line prints the server's CPU µs per request (from /proc, all its threads): unlike req/s it
           barely moves when other processes take the cores, so it is the figure to compare between runs. The
           closed loop's figure still depends on the build's speed (a faster server gets bigger commit groups and
           engine batches), so the part ends with orders paced at 200/s over the same users until filled: the
           same arrivals for every build, CPU per order less the idle CPU -- the figure for A/B comparisons -- beside
           the bare app's CPU per request at the same pace (a paced request costs several times a closed-loop
           one even there: each wakes an idle loop).

The load generator is one aiohttp process (TCPConnector(limit=connections), pre-encoded body, response bodies
read but not parsed). It shares the machine's cores with the server, so its own CPU use is printed (as a share of
one core); if it is near 100 %, the generator -- not the server -- may be the bound: try `--clients 2` (that many
generator processes, connections split between them).

The order path runs as the app does: the native build of app/native.py when it is current (NATIVE_CORE=auto),
Python with NATIVE_CORE=off; the report's second line says which.

The final block lists each target of the issue, the measured value and met / NOT met. Machines are noisy (2 shared
cores): read the ratios to the same run's baselines, not the absolute numbers; timings are never asserted in tests.
`--py-spy out.svg` records the app process with py-spy during the load part (a flame graph; any other suffix:
collapsed stacks). py-spy's default (blocking) sampling slows the app several-fold; and threads waiting for the GIL
after a C call show up inside that call (e.g. the db-read threads in DefaultDialect.do_execute), not as idle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from bench_servers import (
    PASSWORD,
    PG_ADMIN,
    ROOT,
    Load,
    closed_loop,
    database_url,
    drop_database,
    register,
    start_app,
    start_bare,
    until_no_open_orders,
)
from pipeline_paced import paced_cpu, paced_figures, paced_posts
from pipeline_report import LoadRound, report

T = TypeVar("T")
sys.path.insert(0, str(ROOT))


# --- in process ---------------------------------------------------------------------------------------------------


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


async def in_process(url: str, folder: Path, count: int, client_ids: bool = False) -> tuple[float, float, float]:
    """(intake orders/s, end-to-end orders/s, CPU µs per order of all the process's threads) through the real
    services, no HTTP. `client_ids`: every order carries its own client order id, as careful bots send them (intake
    then looks each one up before storing the order)."""
    os.environ.update(
        DATABASE_URL=url, DATA_DIR=str(folder), MARKET_FEED_ENABLED="false", PAPER_BALANCES="USDT:100000000"
    )
    from app.config import load_settings
    from app.orders import OrderRequest
    from app.services import build_services, freeze_startup_heap

    services = build_services(load_settings())
    await services.engine.start()
    freeze_startup_heap()  # what Services.start does for the server
    users = [(await services.auth.register(f"bench{n}@example.com", PASSWORD)).id for n in range(4)]
    plain = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.0001")
    # Warm-up first, as bench/ab_inprocess.py does: "sustained" is the steady state, not the first orders into
    # empty tables and cold caches.
    warm_up = [replace(plain, client_order_id=f"warm-{n}") if client_ids else plain for n in range(count // 10)]
    await asyncio.gather(*(services.orders.submit(users[n % 4], request) for n, request in enumerate(warm_up)))
    await services.engine.drain()
    requests = [replace(plain, client_order_id=f"bot-{n}") if client_ids else plain for n in range(count)]
    cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(services.orders.submit(users[n % 4], request) for n, request in enumerate(requests)))
    intake = time.perf_counter() - start
    await services.engine.drain()
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    filled = len(await services.orders.list_orders(users[0], status="closed", limit=1000))
    assert filled > 0
    await services.stop()
    return count / intake, count / total, cpu / count * 1e6


def run_on_servers_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on the loop the server runs on: uvloop when installed (uvicorn's loop="auto", as under ui.run)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- the run ------------------------------------------------------------------------------------------------------


def bare_load(args: argparse.Namespace) -> Load:
    bare = start_bare()
    try:
        closed_loop(bare.url, "/echo", [None], min(500, args.orders), args.connections, args.clients)  # warm-up
        cpu = bare.cpu_seconds()
        load = closed_loop(bare.url, "/echo", [None], args.orders, args.connections, args.clients)
        load.server_cpu = bare.cpu_seconds() - cpu
        count = min(args.orders, 2000)
        cpu = bare.cpu_seconds()
        asyncio.run(paced_posts(bare.url, "/echo", [{}], 200, count, 202))
        load.paced_us = (bare.cpu_seconds() - cpu) / count * 1e6
        return load
    finally:
        bare.stop()


def app_figures(args: argparse.Namespace, url: str, folder: Path) -> dict[str, object]:
    """Paced latency and/or closed-loop load against one app process (and the bare baseline around the load)."""
    out: dict[str, object] = {}
    bares: list[Load] = []
    if "load" in args.only:
        bares.append(bare_load(args))
    app = start_app(url, folder)
    try:
        run = f"{os.getpid()}-{int(time.time())}"
        if "http" in args.only:
            [token] = asyncio.run(register(app.url, [f"paced-{run}@example.com"]))
            out["paced"] = asyncio.run(paced_figures(app, token))
        if "load" in args.only:
            tokens = asyncio.run(register(app.url, [f"load{n}-{run}@example.com" for n in range(args.users)]))
            warm = closed_loop(app.url, "/api/trading/orders", list(tokens), 200, args.connections, 1)
            assert warm.errors == 0, "warm-up orders were refused"
            asyncio.run(until_no_open_orders(app.url, tokens))
            cpu, t0 = app.cpu_seconds(), time.perf_counter()
            time.sleep(2)
            out["app_idle"] = (app.cpu_seconds() - cpu) / (time.perf_counter() - t0)
            # Same stack, authenticated read: what the app's API costs before any order work.
            cpu = app.cpu_seconds()
            read = closed_loop(app.url, "GET /api/accounts", list(tokens), min(args.orders, 1000), args.connections)
            read.server_cpu = app.cpu_seconds() - cpu
            out["app_read"] = read
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "-o",
                        args.py_spy,
                        "--rate",
                        "100",
                        "--format",
                        "flamegraph" if args.py_spy.endswith(".svg") else "raw",
                        "--pid",
                        str(app.process.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            path = "/api/trading/orders"
            rounds = []
            for number in range(args.rounds):
                if number > 0:  # the bare app between rounds: each round has a baseline on either side
                    bares.append(bare_load(args))
                cpu = app.cpu_seconds()
                load = closed_loop(app.url, path, list(tokens), args.orders, args.connections, args.clients)
                ack_cpu = (app.cpu_seconds() - cpu) / load.ok * 1e6
                done = asyncio.run(until_no_open_orders(app.url, tokens))
                load.server_cpu = app.cpu_seconds() - cpu  # includes the polls for open orders
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                    spy = None
                rounds.append(LoadRound(load, load.ok / (done - load.start), ack_cpu))
            out["app_rounds"] = rounds
            out["app_paced_cpu"] = paced_cpu(app, tokens, 200, min(args.orders, 2000), out["app_idle"])
    finally:
        app.stop()
    if "load" in args.only:
        bares.append(bare_load(args))
        out["bares"] = bares
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Order pipeline benchmark; see the module docstring.")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--orders", type=int, default=5000, help="orders per in-process and load run (5000)")
    parser.add_argument("--only", action="append", choices=["inprocess", "http", "load"], help="repeatable")
    parser.add_argument("--connections", type=int, default=32, help="load: concurrent connections (32)")
    parser.add_argument("--users", type=int, default=16, help="load: registered users, round-robin (16)")
    parser.add_argument("--clients", type=int, default=1, help="load: generator processes (1)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="load: rounds of the app, each between two bare runs; median judged (3)"
    )
    parser.add_argument(
        "--py-spy", metavar="SVG", help="load: py-spy record the app into SVG (.svg) or collapsed stacks"
    )
    args = parser.parse_args()
    args.only = args.only or ["inprocess", "http", "load"]
    folder = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    figures: dict[str, object] = {}
    t0 = time.perf_counter()

    if "inprocess" in args.only:
        from storage_floor import storage_floor_us  # beside this script

        figures["raw"] = raw_commit_rate(args.db, folder)
        # 500 orders of one user per transaction pair, one, and one from each of `--users` users (the load part's
        # commits hold about that: docs/orders.md, "Speed").
        for name, batch, users in (("floor500", 500, 1), ("floor1", 1, 1), ("floor_users", args.users, args.users)):
            url = database_url(args.db, folder, name)
            try:
                orders = min(args.orders, 10_000 if batch > 1 else 1_000)
                figures[name] = storage_floor_us(url, orders, batch, users)
            finally:
                drop_database(url)
        url = database_url(args.db, folder, "inprocess")
        try:
            figures["intake"], figures["sustained"], figures["cpu_us"] = run_on_servers_loop(
                in_process(url, folder, args.orders)
            )
        finally:
            drop_database(url)
        url = database_url(args.db, folder, "client_ids")
        try:
            _, figures["sustained_ids"], figures["cpu_us_ids"] = run_on_servers_loop(
                in_process(url, folder, args.orders, client_ids=True)
            )
        finally:
            drop_database(url)
    if "http" in args.only or "load" in args.only:
        url = database_url(args.db, folder, "http")
        try:
            figures.update(app_figures(args, url, folder / "app"))
        finally:
            drop_database(url)
    report(args, figures, time.perf_counter() - t0)


if __name__ == "__main__":
    main()

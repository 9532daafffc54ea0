"""Price fan-out over the WebSocket API: N clients, one server process, CPU and tick->client latency.

    .venv/bin/python bench/ws_fanout.py [--clients 500] [--seconds 20] [--rate 10] [--baseline-seconds 10]

Every process runs on 127.0.0.1 and is stopped by the script; event loops are uvloop, as under `ui.run`.
Three measurements in one run, each with its own server process:
- tradewind: the real stack (FastAPI app with Tradewind's API routes and `/ws`, `build_services` on a throw-away
  SQLite database) served by uvicorn, the simulated market stepping `--rate` times a second on a fixed cadence
  (5 symbols, each step moves every symbol: up to 5 x rate PRICE_UPDATEs per client per second), N clients;
- baseline: a bare `websockets` broadcast server sending the same message shape at the same cadence to N clients
  (no FastAPI, no MarketState, no services): the cost of WebSocket fan-out itself. Ratios are tradewind/baseline;
- single client: the real stack with one client: the pipeline's own latency with no fan-out.

Clients live in `--client-procs` separate processes (so the server's CPU is measured alone and one client loop
is not the bottleneck); each client is a task. Latency = client receive wall clock - the PRICE_UPDATE's `ts` (the
tick's time, ms resolution: figures are overstated by up to 1 ms); one machine, one clock.
Server CPU = (utime + stime from /proc/<pid>/stat) over the measurement window / its wall time, in cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARM_UP_S = 2.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def percentile(histogram: Counter[int], q: float) -> int | None:
    """The q-quantile of a {milliseconds: count} histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = q * (total - 1), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen > rank:
            return value
    return max(histogram)


# ---- servers (child processes) --------------------------------------------------------------------------------


async def serve_tradewind(rate: float) -> None:
    """The real stack: API routes + /ws on uvicorn, the simulated market driving MarketState at `rate` steps/s."""
    data_dir = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    os.environ.update(
        DATA_DIR=str(data_dir), DATABASE_URL=f"sqlite:///{data_dir / 'bench.db'}", MARKET_FEED_ENABLED="false"
    )
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from fastapi import FastAPI

    from app.api import mount_api, ws
    from app.config import load_settings
    from app.market.simulated import SimulatedMarket
    from app.services import build_services

    services = build_services(load_settings())  # MarketState back-filled by the default simulator
    await services.start()  # as in the app (MARKET_FEED_ENABLED=false: the simulator below runs instead)
    app = FastAPI()
    app.state.services = services
    mount_api(app)
    # Every client uses the one bench user's token: lift the per-user socket cap (20) for this measurement only.
    ws.MAX_SOCKETS_PER_USER = 1_000_000
    user = await services.auth.register("bench@example.com", "benchmark-password")
    token = await services.auth.issue_token(user.id)
    market = SimulatedMarket(services.market, services.rules, seed=7, ticks_per_second=rate)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no started event)
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(json.dumps({"url": f"ws://127.0.0.1:{port}/ws?token={token}"}), flush=True)
    driver = asyncio.create_task(market.run())
    await serving
    driver.cancel()


async def serve_baseline(rate: float) -> None:
    """A trivial broadcast server: the same PRICE_UPDATE shape and cadence, nothing else."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "CONNECTED", "data": {"user_id": "bench", "seq": 0}}))
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"url": f"ws://127.0.0.1:{port}/ws"}), flush=True)
        loop = asyncio.get_running_loop()
        price, deadline = 100.0, loop.time()
        while True:
            ts = now_ms()
            for symbol in SYMBOLS:
                price += 0.01
                data = {"symbol": symbol, "price": f"{price:.2f}", "bid": "1", "ask": "2", "change_24h_pct": "0.1"}
                broadcast(clients, json.dumps({"type": "PRICE_UPDATE", "data": {**data, "ts": ts}}))
            deadline += 1 / rate
            await asyncio.sleep(max(deadline - loop.time(), 0))


# ---- clients (child processes) --------------------------------------------------------------------------------


async def run_clients(url: str, clients: int, seconds: float) -> None:
    """Connect `clients` sockets, say "ready", wait for "go" on stdin, measure for `seconds`; print JSON figures."""
    import websockets

    latencies: Counter[int] = Counter()
    counts = [0] * clients
    measuring = asyncio.Event()
    connected = early = 0
    all_connected = asyncio.Event()

    async def client(index: int) -> None:
        nonlocal connected, early
        async with websockets.connect(url, compression=None, open_timeout=120, max_queue=256) as ws:
            while json.loads(await ws.recv())["type"] != "CONNECTED":
                early += 1  # API.md promises CONNECTED first; count violations instead of failing the run
            connected += 1
            if connected == clients:
                all_connected.set()
            async for raw in ws:  # until the run is cancelled
                received = now_ms()
                if measuring.is_set():
                    message = json.loads(raw)
                    if message["type"] == "PRICE_UPDATE":
                        counts[index] += 1
                        latencies[received - message["data"]["ts"]] += 1

    async def connect_all() -> None:
        async with asyncio.TaskGroup() as tasks:
            for index in range(clients):
                tasks.create_task(client(index))
                await asyncio.sleep(0.002)  # do not stampede the accept queue

    runner = asyncio.create_task(connect_all())
    await asyncio.wait_for(all_connected.wait(), 180)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    own_cpu, started = cpu_seconds(os.getpid()), time.monotonic()
    measuring.set()
    await asyncio.sleep(seconds)
    measuring.clear()
    wall = time.monotonic() - started
    own_cpu = cpu_seconds(os.getpid()) - own_cpu
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await runner
    result = {
        "wall": wall,
        "cpu": own_cpu,
        "counts": counts,
        "latencies": {str(k): v for k, v in latencies.items()},
        "early": early,
    }
    print(json.dumps(result), flush=True)


# ---- orchestration -----------------------------------------------------------------------------------------------


def _read_json(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"{what} exited early (code {process.wait()})")
    return dict(json.loads(line))


def measure(mode: str, clients: int, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Start a server child and the client children, measure one window, stop them all; returns the figures."""
    me = [sys.executable, str(Path(__file__).resolve())]
    procs: list[subprocess.Popen[str]] = []
    try:
        server = subprocess.Popen([*me, mode, str(args.rate)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append(server)
        url = _read_json(server, mode)["url"]
        n_procs = max(1, min(args.client_procs, clients))
        shares = [clients // n_procs + (i < clients % n_procs) for i in range(n_procs)]
        client_procs = [
            subprocess.Popen(
                [*me, "_clients", url, str(share), str(seconds)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for share in shares
        ]
        procs.extend(client_procs)
        for process in client_procs:
            _read_json(process, "clients")  # ready: every socket connected and CONNECTED received
        time.sleep(WARM_UP_S)
        server_cpu, started = cpu_seconds(server.pid), time.monotonic()
        for process in client_procs:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        time.sleep(seconds)
        server_cpu, wall = cpu_seconds(server.pid) - server_cpu, time.monotonic() - started
        results = [_read_json(process, "clients") for process in client_procs]
    finally:
        for process in procs:
            process.terminate()
        for process in procs:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    histogram: Counter[int] = Counter()
    for result in results:
        histogram.update({int(k): v for k, v in result["latencies"].items()})
    counts = [c for result in results for c in result["counts"]]
    window = sum(r["wall"] for r in results) / len(results)
    return {
        "clients": clients,
        "server_cores": server_cpu / wall,
        "client_cores": sum(r["cpu"] for r in results) / window,
        "delivered_per_s": sum(counts) / window,
        "per_client_per_s": sum(counts) / len(counts) / window,
        "min_client_per_s": min(counts) / window,
        "p50_ms": percentile(histogram, 0.50),
        "p99_ms": percentile(histogram, 0.99),
        "max_ms": max(histogram) if histogram else None,
        "price_before_connected": sum(r["early"] for r in results),
    }


ROWS = [
    ("server CPU (cores)", "server_cores", "{:.2f}"),
    ("clients' CPU (cores, all processes)", "client_cores", "{:.2f}"),
    ("delivered updates/s (all clients)", "delivered_per_s", "{:,.0f}"),
    ("updates/s per client", "per_client_per_s", "{:.1f}"),
    ("slowest client updates/s", "min_client_per_s", "{:.1f}"),
    ("tick->client p50 (ms)", "p50_ms", "{}"),
    ("tick->client p99 (ms)", "p99_ms", "{}"),
    ("tick->client max (ms)", "max_ms", "{}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=500, help="WebSocket clients")
    parser.add_argument("--client-procs", type=int, default=2, help="processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window against Tradewind")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="window of each baseline")
    parser.add_argument("--rate", type=float, default=10.0, help="market steps per second (each moves 5 symbols)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    if args.clients < 1 or args.rate <= 0 or args.seconds <= 0 or args.baseline_seconds <= 0:
        parser.error("--clients, --rate, --seconds and --baseline-seconds must be positive")

    load_before = os.getloadavg()
    baseline = measure("_baseline", args.clients, args, args.baseline_seconds)
    ours = measure("_serve", args.clients, args, args.seconds)
    single = measure("_serve", 1, args, args.baseline_seconds)
    load_after = os.getloadavg()

    offered = args.rate * len(SYMBOLS)
    print(
        f"\nWS price fan-out: {args.clients} clients in {args.client_procs} processes, 5 symbols x {args.rate:g} "
        f"steps/s (<= {offered:g} updates/s per client)"
    )
    print(f"{'':38}{'tradewind':>11}{'raw ws':>10}{'ratio':>8}{'1 client':>10}")
    for label, key, spec in ROWS:
        a, b, c = ours[key], baseline[key], single[key]
        ratio = f"{a / b:.2f}" if isinstance(a, int | float) and isinstance(b, int | float) and b else "-"
        print(f"{label:38}{spec.format(a):>11}{spec.format(b):>10}{ratio:>8}{spec.format(c):>10}")
    early = ours["price_before_connected"] + single["price_before_connected"]
    print(f"{'prices received before CONNECTED':38}{early:>11}")
    print(
        f"load average (1/5 min) before: {load_before[0]:.2f}/{load_before[1]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}, on {os.cpu_count()} cores"
    )
    passed = ours["p99_ms"] is not None and ours["p99_ms"] < 100 and ours["server_cores"] < 1
    print(f"\ntarget p99 < 100 ms and < 1 core: {'PASS' if passed else 'FAIL'}")
    if args.json:
        args.json.write_text(
            json.dumps({"tradewind": ours, "baseline": baseline, "single": single, "args": vars(args)}, default=str)
        )


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "_serve":
        uvloop.run(serve_tradewind(float(sys.argv[2])))
    elif command == "_baseline":
        uvloop.run(serve_baseline(float(sys.argv[2])))
    elif command == "_clients":
        uvloop.run(run_clients(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    else:
        main()

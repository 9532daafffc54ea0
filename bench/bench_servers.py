"""What the HTTP benchmarks share (bench/order_pipeline.py, bench/reads.py, bench/replicas.py): the app and the bare
FastAPI app as child processes with their CPU read from /proc, throwaway databases, registered users, and the
closed-loop load generator (aiohttp, pre-encoded body, responses read but not parsed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"}
PASSWORD = "correct horse battery"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(kind: str, folder: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / f'{name}.db'}"
    database = f"tradewind_bench_{name}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- child servers ------------------------------------------------------------------------------------------------


class Server:
    """A server child process on a free port; ready once GET /health answers 200."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, *argv],
            env={**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            if self.process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{argv[0]} did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (all threads), from /proc (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_app(url: str, folder: Path) -> Server:
    env = {
        "DATABASE_URL": url,
        "DATA_DIR": str(folder),
        "MARKET_FEED_ENABLED": "true",
        "PAPER_BALANCES": "USDT:100000000",
    }
    return Server([str(ROOT / "main.py")], env)


def start_bare() -> Server:
    return Server([str(ROOT / "bench" / "bare_app.py")], {})


async def register(base: str, emails: list[str]) -> list[str]:
    async with aiohttp.ClientSession(base) as client:
        tokens = []
        for email in emails:
            async with client.post("/auth/register", json={"email": email, "password": PASSWORD}) as response:
                assert response.status == 201, await response.text()
                tokens.append((await response.json())["token"])
    return tokens


# --- closed-loop load generator ------------------------------------------------------------------------------------


@dataclass
class Load:
    ok: int  # 2xx answers
    errors: int
    start: float  # time.time() of the first request
    end: float  # time.time() of the last answer
    cpu: float  # generator CPU seconds (all its processes)
    server_cpu: float = 0.0  # server process CPU seconds, set by the caller
    paced_us: float = 0.0  # bare app: server CPU µs per request at a paced 200/s, set by bare_load

    @property
    def server_us(self) -> float:
        """Server CPU µs per answered request: robust to other load on the machine, unlike req/s."""
        return self.server_cpu / self.ok * 1e6

    @property
    def rate(self) -> float:
        return self.ok / (self.end - self.start)

    @property
    def cpu_share(self) -> float:
        """Generator CPU as a share of one core over the run."""
        return self.cpu / (self.end - self.start)


async def _load(base: str, path: str, tokens: list[str | None], count: int, connections: int, offset: int) -> Load:
    method, _, path = path.rpartition(" ")  # "GET /api/accounts"; a bare path is a POST of the order body
    method = method or "POST"
    data = json.dumps(ORDER).encode() if method == "POST" else None
    headers = [{"Content-Type": "application/json", **({"Authorization": f"Bearer {t}"} if t else {})} for t in tokens]
    counter = itertools.count()
    ok = errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base, connector=connector, auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal ok, errors
            while (n := next(counter)) < count:
                user = headers[(n + offset) % len(headers)]
                async with session.request(method, path, data=data, headers=user) as response:
                    await response.read()
                    if response.status < 300:
                        ok += 1
                    else:
                        errors += 1

        cpu = time.process_time()
        start = time.time()
        await asyncio.gather(*(worker() for _ in range(connections)))
        end = time.time()
        cpu = time.process_time() - cpu
    return Load(ok, errors, start, end, cpu)


# One generator process's share: (base URL, path, tokens, requests, connections, token offset, time.time() to start).
LoadJob = tuple[str, str, list[str | None], int, int, int, float]


def _load_process(job: LoadJob) -> Load:
    base, path, tokens, count, connections, offset, start_at = job
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_load(base, path, tokens, count, connections, offset))


def load_in_processes(jobs: list[LoadJob]) -> Load:
    """The jobs in generator processes of their own, started together; their answers summed as one load."""
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.map(_load_process, jobs)
    return Load(
        sum(p.ok for p in parts),
        sum(p.errors for p in parts),
        min(p.start for p in parts),
        max(p.end for p in parts),
        sum(p.cpu for p in parts),
    )


def closed_loop(base: str, path: str, tokens: list[str | None], count: int, connections: int, clients: int = 1) -> Load:
    """`count` requests (POSTs of the order body unless path is "GET /...") over `connections` connections (closed
    loop), round-robin over `tokens`; `clients` generator processes share them."""
    if clients == 1:
        return asyncio.run(_load(base, path, tokens, count, connections, 0))
    start_at = time.time() + 2.0
    return load_in_processes(
        [(base, path, tokens, count // clients, connections // clients, n, start_at) for n in range(clients)]
    )


async def until_no_open_orders(base: str, tokens: list[str]) -> float:
    """time.time() at which every user's GET /api/trading/orders?status=open first came back empty."""
    waiting = list(tokens)
    async with aiohttp.ClientSession(base) as client:
        while waiting:
            for token in list(waiting):
                headers = {"Authorization": f"Bearer {token}"}
                async with client.get("/api/trading/orders?status=open&limit=1", headers=headers) as response:
                    if not await response.json():
                        waiting.remove(token)
            if waiting:
                await asyncio.sleep(0.05)  # light: the polls share the server with the engine they wait for
    return time.time()

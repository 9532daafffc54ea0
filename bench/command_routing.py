"""Command routing for partitioned execution (issue #12, docs/scaling.md "Commands to the owner"): an order
journaled on replica B must reach the replica A that owns its account's partition. Two candidates (redis, pgqueue)
and two wake-up variants of the second, each beside the baseline "intake-like commit only, no routing" measured in
the same run. The default run takes 60-100 s; results and the choice: docs/command-routing.md.

    .venv/bin/python bench/command_routing.py [--seconds 3] [--paced-seconds 3] [--connections 8] [--group 32]
                                              [--partitions 22] [--takeover 5000] [--poll-ms 5]
                                              [--only throughput|paced|takeover]

baseline  the producer commits an order-like row (BEGIN; INSERT; COMMIT), nothing else.
redis     the same commit, then XADD of the command to the partition's stream (<prefix>cmd:<p>). The owner reads all
          its partitions' streams with one XREADGROUP BLOCK, runs its batch transaction (an UPDATE of the batch's
          order rows, standing for the engine's write batch), then XACKs (+ XTRIM MINID ~, so streams do not grow).
pgqueue   the command row goes into a queue table IN the intake transaction, with pg_notify on the partition's
          channel (one statement: INSERT ... RETURNING feeding pg_notify). The owner LISTENs on its partitions'
          channels and drains with DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1000) RETURNING
          inside the same batch transaction as the UPDATE above (commit = ack).
pgpoll    pgqueue without NOTIFY: the owner drains again `--poll-ms` (5) after an empty drain. It tells what the
          NOTIFY costs (PostgreSQL serialises the commits of notifying transactions on one global lock).
pgwake    pgqueue with the wake-up through Redis instead of NOTIFY: PUBLISH on the partition's channel after the
          commit (best effort: a lost wake-up waits for the owner's 0.2 s safety poll, as in pgqueue).

Each intake variant runs single-row (one order per commit) and grouped (`--group` orders per commit, as the app's
group commit does: executemany for the rows, one pipeline of XADDs / one INSERT ... SELECT unnest for the commands).
Producer and owner (consumer) are separate processes (multiprocessing, spawn), each on its own uvloop.

Figures:
- throughput: closed loop, `--connections` producer connections for `--seconds`. produced/s = commands committed
  (and XADDed) per second in the producer; delivered/s = commands the owner had / (owner's last receipt - start).
- latency at a paced 200/s and 1,000/s (single-row, open loop; `--connections` is the producer's connection pool):
  intake = the producer's call (BEGIN .. COMMIT, + XADD for redis) p50/p99; commit -> owner = the owner has the
  command (XREADGROUP / DELETE ... RETURNING returned) minus the producer's commit acknowledgement (CLOCK_MONOTONIC is
  system-wide, so the two processes' stamps compare; for pgqueue it can be negative: NOTIFY goes out at commit,
  before the producer has read its own COMMIT answer); start -> owner = from the intake call's start, to read
  against the baseline's intake (start -> commit).
- CPU µs per command: producer and owner processes (getrusage, all threads), their PostgreSQL backends
  (/proc/<backend pid>/stat: the load put on the database, split intake side / owner side), redis-server (INFO cpu;
  a shared server: anything else using it counts too), and WAL bytes per command (pg_current_wal_lsn: cluster-wide,
  other databases' writes count too). The owner's figures include its UPDATE of the batch's rows (same in all modes).
- takeover: `--takeover` commands are in the hands of an owner process that has not acknowledged them (redis: read
  with XREADGROUP, pending; pgqueue: deleted in an open transaction); it is killed with SIGKILL; the time until a new
  owner holds all of them (redis: XAUTOCLAIM over every stream; pgqueue: plain drains, which find the rows again as
  soon as PostgreSQL has rolled back the dead connection's transaction).

Uses PostgreSQL at 127.0.0.1:5432 (user postgres, trust; scratch database tw_bench_routing, dropped at the end) and
Redis at 127.0.0.1:6379 (keys under a unique prefix, deleted at the end). Machines are noisy (2 shared cores):
read the ratios to the same run's baseline; CPU per command moves less than rates when other processes take the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import sys
import time
import uuid
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis.asyncio as aioredis

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "tw_bench_routing"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/0"
ALL_PARTITIONS = 64  # docs/scaling.md: crc32(account_id) % 64
GROUP_NAME = "owner"
DRAIN_LIMIT = 1000  # the paper engine's batch size
READ_COUNT = 128  # XREADGROUP COUNT applies per stream
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = ("baseline", "redis", "pgqueue", "pgpoll", "pgwake")
QUEUE_MODES = ("pgqueue", "pgpoll", "pgwake")
REDIS_MODES = ("redis", "pgwake")

SCHEMA = """
CREATE TABLE orders (
    id bigint PRIMARY KEY, account_id text NOT NULL, client_order_id text NOT NULL, symbol text NOT NULL,
    side text NOT NULL, type text NOT NULL, quantity numeric(36, 18), status text NOT NULL,
    created_at bigint NOT NULL, updated_at bigint NOT NULL,
    CONSTRAINT uq_orders_account_client UNIQUE (account_id, client_order_id)
);
CREATE INDEX ix_orders_account_status ON orders (account_id, status);
CREATE TABLE command_queue (
    id bigserial PRIMARY KEY, partition integer NOT NULL, order_id bigint NOT NULL, payload text NOT NULL
);
CREATE INDEX ix_command_queue_partition ON command_queue (partition, id);
"""
INSERT_ORDER = (
    "INSERT INTO orders (id, account_id, client_order_id, symbol, side, type, quantity, status, created_at,"
    " updated_at) VALUES (%s, %s, %s, 'BTCUSDT', 'BUY', 'MARKET', 0.0001, 'PENDING', %s, %s)"
)
# The commands and their wake-ups in one statement (one round trip more than the baseline, whatever the group size).
ENQUEUE = (
    "WITH c AS (INSERT INTO command_queue (partition, order_id, payload)"
    " SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[]) RETURNING partition)"
    " SELECT pg_notify('tw_bench_cmd_' || p, '') FROM (SELECT DISTINCT partition AS p FROM c) d"
)
ENQUEUE_QUIET = (  # pgpoll: the same rows, no NOTIFY (the owner polls)
    "INSERT INTO command_queue (partition, order_id, payload) SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[])"
)
DRAIN = (
    "DELETE FROM command_queue WHERE id IN (SELECT id FROM command_queue WHERE partition = ANY(%s)"
    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING partition, order_id, payload"
)
OWNER_WRITE = "UPDATE orders SET status = 'NEW', updated_at = %s WHERE id = ANY(%s)"


@dataclass(frozen=True)
class Config:
    mode: str
    prefix: str
    owned: tuple[int, ...]
    accounts: tuple[str, ...]
    connections: int
    group: int = 1
    seconds: float = 3.0
    rate: float = 0.0  # > 0: paced (open loop), single orders
    record: bool = False  # keep per-command stamps for latency
    poll_ms: float = 5.0  # pgpoll: the owner's sleep after an empty drain


@dataclass
class Side:
    """What one process measured over its window."""

    commands: int = 0
    start_ns: int = 0
    end_ns: int = 0
    cpu_s: float = 0.0
    backend_cpu_s: float = 0.0
    stamps: dict[int, int] = field(default_factory=dict)  # order id -> monotonic ns (commit ack / owner has it)
    begun: dict[int, int] = field(default_factory=dict)  # order id -> intake call start (producer)
    intake_ns: list[int] = field(default_factory=list)  # producer: duration of each intake call
    batches: int = 0
    empty_drains: int = 0
    error: str = ""
    role: str = ""


def partition_of(account_id: str) -> int:
    return zlib.crc32(account_id.encode()) % ALL_PARTITIONS


def stream_key(prefix: str, partition: int) -> str:
    return f"{prefix}cmd:{partition}"


def wake_channel(prefix: str, partition: int) -> str:
    return f"{prefix}wake:{partition}"


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pid_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def backend_pid(conn: psycopg.AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return int(row[0])


def payload(order_id: int, account_id: str) -> str:
    return json.dumps({"type": "SubmitOrder", "order_id": order_id, "account_id": account_id})


def run_loop(coro: Awaitable[Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


# ---- producer (child process) ----------------------------------------------------------------------------------


class Intake:
    """One producer connection: the intake-like transaction, plus the mode's routing."""

    def __init__(self, cfg: Config, conn: psycopg.AsyncConnection[Any], red: aioredis.Redis | None) -> None:
        self.cfg, self.conn, self.red = cfg, conn, red

    async def write(self, order_ids: list[int]) -> int:
        """Journal the orders in one transaction (and route them); return the commit acknowledgement's stamp."""
        cfg, accounts = self.cfg, self.cfg.accounts
        now = time.time_ns() // 1_000_000
        rows = [(oid, accounts[oid % len(accounts)], f"c{oid}", now, now) for oid in order_ids]
        async with self.conn.transaction():
            if len(rows) == 1:
                await self.conn.execute(INSERT_ORDER, rows[0])
            else:
                async with self.conn.cursor() as cur:
                    await cur.executemany(INSERT_ORDER, rows)
            if cfg.mode in QUEUE_MODES:
                await self.conn.execute(
                    ENQUEUE if cfg.mode == "pgqueue" else ENQUEUE_QUIET,
                    (
                        [partition_of(row[1]) for row in rows],
                        order_ids,
                        [payload(row[0], row[1]) for row in rows],
                    ),
                )
        committed = time.monotonic_ns()
        if cfg.mode == "redis":
            assert self.red is not None
            if len(rows) == 1:
                await self.red.xadd(
                    stream_key(cfg.prefix, partition_of(rows[0][1])), {"c": payload(rows[0][0], rows[0][1])}
                )
            else:
                pipe = self.red.pipeline(transaction=False)
                for row in rows:
                    pipe.xadd(stream_key(cfg.prefix, partition_of(row[1])), {"c": payload(row[0], row[1])})
                await pipe.execute()
        elif cfg.mode == "pgwake":  # best effort: a lost wake-up waits for the owner's 0.2 s poll
            assert self.red is not None
            channels = {wake_channel(cfg.prefix, partition_of(row[1])) for row in rows}
            if len(channels) == 1:
                await self.red.publish(channels.pop(), b"")
            else:
                pipe = self.red.pipeline(transaction=False)
                for channel in channels:
                    pipe.publish(channel, b"")
                await pipe.execute()
        return committed


async def producer(cfg: Config, ready: Any, go: Any) -> Side:
    conns = [await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) for _ in range(cfg.connections)]
    red = aioredis.Redis.from_url(REDIS_URL) if cfg.mode in REDIS_MODES else None
    if red is not None:
        await red.ping()
    pids = [await backend_pid(conn) for conn in conns]
    intakes = [Intake(cfg, conn, red) for conn in conns]
    side = Side()
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    cpu0, bcpu0 = process_cpu(), sum(pid_cpu(pid) for pid in pids)
    side.start_ns = time.monotonic_ns()
    deadline = side.start_ns + int(cfg.seconds * 1e9)

    async def timed(intake: Intake, ids: list[int]) -> None:
        begun = time.monotonic_ns()
        committed = await intake.write(ids)
        side.intake_ns.append(time.monotonic_ns() - begun)
        side.commands += len(ids)
        if cfg.record:
            for oid in ids:
                side.stamps[oid] = committed
                side.begun[oid] = begun

    if cfg.rate <= 0:  # closed loop: each connection writes its next group as soon as the last one committed
        next_id = iter(range(1, 1 << 62))

        async def worker(intake: Intake) -> None:
            while time.monotonic_ns() < deadline:
                await timed(intake, [next(next_id) for _ in range(cfg.group)])

        await asyncio.gather(*(worker(intake) for intake in intakes))
    else:  # open loop at cfg.rate: a call per order at its scheduled time, on the first free connection
        pool: asyncio.Queue[Intake] = asyncio.Queue()
        for intake in intakes:
            pool.put_nowait(intake)

        async def one(oid: int) -> None:
            intake = await pool.get()
            try:
                await timed(intake, [oid])
            finally:
                pool.put_nowait(intake)

        tasks, total = [], int(cfg.seconds * cfg.rate)
        for n in range(total):
            delay = (side.start_ns + int(n * 1e9 / cfg.rate) - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n + 1)))
        await asyncio.gather(*tasks)
    side.end_ns = time.monotonic_ns()
    side.cpu_s = process_cpu() - cpu0
    side.backend_cpu_s = sum(pid_cpu(pid) for pid in pids) - bcpu0
    for conn in conns:
        await conn.close()
    if red is not None:
        await red.aclose()
    return side


# ---- owner / consumer (child process) --------------------------------------------------------------------------


async def consumer(cfg: Config, ready: Any, go: Any, expected: Any) -> Side:
    conn = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
    pids = [await backend_pid(conn)]
    side = Side()
    wake = asyncio.Event()
    listener: asyncio.Task[None] | None = None
    listen_conn: psycopg.AsyncConnection[Any] | None = None
    red: aioredis.Redis | None = None
    pubsub: Any = None
    if cfg.mode == "pgqueue":
        listen_conn = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
        pids.append(await backend_pid(listen_conn))
        for p in cfg.owned:
            await listen_conn.execute(f"LISTEN tw_bench_cmd_{p}")

        async def listen() -> None:
            assert listen_conn is not None
            async for _ in listen_conn.notifies():
                wake.set()

        listener = asyncio.create_task(listen())
    elif cfg.mode == "pgwake":
        red = aioredis.Redis.from_url(REDIS_URL)
        pubsub = red.pubsub()
        await pubsub.subscribe(*(wake_channel(cfg.prefix, p) for p in cfg.owned))

        async def wakes() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    wake.set()

        listener = asyncio.create_task(wakes())
    elif cfg.mode == "redis":
        red = aioredis.Redis.from_url(REDIS_URL)
        await red.ping()
    streams: dict[Any, Any] = {stream_key(cfg.prefix, p): ">" for p in cfg.owned}

    def done() -> bool:
        return bool(0 <= expected.value <= side.commands)

    def take(order_ids: list[int], had: int) -> None:
        side.commands += len(order_ids)
        side.batches += 1
        side.end_ns = had
        if cfg.record:
            for oid in order_ids:
                side.stamps[oid] = had

    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    cpu0, bcpu0 = process_cpu(), sum(pid_cpu(pid) for pid in pids)
    side.start_ns = time.monotonic_ns()
    give_up = None
    while not done():
        if expected.value >= 0 and give_up is None:
            give_up = time.monotonic() + 15
        if give_up is not None and time.monotonic() > give_up:
            side.error = f"gave up with {side.commands} of {expected.value} commands"
            break
        if cfg.mode in QUEUE_MODES:
            wake.clear()
            async with conn.transaction():
                rows = await (await conn.execute(DRAIN, (list(cfg.owned), DRAIN_LIMIT))).fetchall()
                had = time.monotonic_ns()
                if rows:
                    ids = [json.loads(row[2])["order_id"] for row in rows]
                    await conn.execute(OWNER_WRITE, (time.time_ns() // 1_000_000, ids))
            if rows:
                take(ids, had)
            else:
                side.empty_drains += 1
                if cfg.mode == "pgpoll":
                    await asyncio.sleep(cfg.poll_ms / 1000)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), 0.2)
        else:
            assert red is not None
            answer: Any = await red.xreadgroup(GROUP_NAME, "owner-a", streams, count=READ_COUNT, block=200)
            had = time.monotonic_ns()
            if not answer:
                side.empty_drains += 1
                continue
            ids, acks = [], []
            for key, entries in answer:
                entry_ids = [entry_id for entry_id, _ in entries]
                ids.extend(json.loads(fields[b"c"])["order_id"] for _, fields in entries)
                acks.append((key, entry_ids))
            async with conn.transaction():
                await conn.execute(OWNER_WRITE, (time.time_ns() // 1_000_000, ids))
            pipe = red.pipeline(transaction=False)
            for key, entry_ids in acks:
                pipe.xack(key, GROUP_NAME, *entry_ids)
                pipe.xtrim(key, minid=entry_ids[-1], approximate=True)
            await pipe.execute()
            take(ids, had)
    side.cpu_s = process_cpu() - cpu0
    side.backend_cpu_s = sum(pid_cpu(pid) for pid in pids) - bcpu0
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
            await listener
    if pubsub is not None:
        await pubsub.aclose()
    for c in (conn, listen_conn):
        if c is not None:
            await c.close()
    if red is not None:
        await red.aclose()
    return side


def child(role: str, cfg: Config, ready: Any, go: Any, expected: Any, out: Any) -> None:
    try:
        if role == "producer":
            side = run_loop(producer(cfg, ready, go))
        else:
            side = run_loop(consumer(cfg, ready, go, expected))
    except Exception as error:
        side = Side(error=f"{role}: {type(error).__name__}: {error}")
        ready.set()
    side.role = role
    out.put(side)


# ---- takeover: a dead owner's unacknowledged commands ---------------------------------------------------------


def dead_owner(mode: str, prefix: str, owned: tuple[int, ...], count: int, ready: Any) -> None:
    """Take `count` commands without acknowledging them, say so, then wait to be killed."""

    async def main() -> None:
        if mode == "redis":
            red = aioredis.Redis.from_url(REDIS_URL)
            streams: dict[Any, Any] = {stream_key(prefix, p): ">" for p in owned}
            got = 0
            while got < count:
                answer: Any = await red.xreadgroup(GROUP_NAME, "owner-dead", streams, count=1000, block=1000)
                got += sum(len(entries) for _, entries in answer or [])
        else:
            conn = await psycopg.AsyncConnection.connect(PG_URL)  # not autocommit: the DELETE stays uncommitted
            rows = await (await conn.execute(DRAIN, (list(owned), count))).fetchall()
            assert len(rows) == count, len(rows)
        ready.set()
        await asyncio.sleep(3600)

    run_loop(main())


async def takeover(
    mode: str, prefix: str, owned: tuple[int, ...], count: int, accounts: tuple[str, ...]
) -> dict[str, Any]:
    red = aioredis.Redis.from_url(REDIS_URL)
    conn = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
    await reset(conn, red, prefix, owned)
    rows = [
        (partition_of(accounts[n % len(accounts)]), n, payload(n, accounts[n % len(accounts)])) for n in range(count)
    ]
    if mode == "redis":
        pipe = red.pipeline(transaction=False)
        for part, _, body in rows:
            pipe.xadd(stream_key(prefix, part), {"c": body})
        await pipe.execute()
    else:
        await conn.execute(ENQUEUE, ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=dead_owner, args=(mode, prefix, owned, count, ready))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait, 30)
    cpu0 = process_cpu()
    started = time.monotonic_ns()
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    got, calls = 0, 0
    while got < count and time.monotonic_ns() - started < 20e9:
        if mode == "redis":
            for p in owned:
                cursor: Any = "0-0"
                while True:  # min_idle_time 0: the partition lease (not idleness) says the old owner is gone
                    answer = await red.xautoclaim(
                        stream_key(prefix, p), GROUP_NAME, "owner-new", 0, start_id=cursor, count=1000
                    )
                    calls += 1
                    cursor, claimed = answer[0], answer[1]
                    got += len(claimed)
                    if cursor in (b"0-0", "0-0"):
                        break
        else:
            async with conn.transaction():
                drained = await (await conn.execute(DRAIN, (list(owned), DRAIN_LIMIT))).fetchall()
            calls += 1
            got += len(drained)
            if not drained:
                await asyncio.sleep(0.001)
    elapsed_ms = (time.monotonic_ns() - started) / 1e6
    cpu_ms = (process_cpu() - cpu0) * 1e3
    proc.join(5)
    await conn.close()
    await red.aclose()
    return {"mode": mode, "got": got, "count": count, "ms": elapsed_ms, "cpu_ms": cpu_ms, "calls": calls}


# ---- orchestration ---------------------------------------------------------------------------------------------


async def reset(conn: psycopg.AsyncConnection[Any], red: aioredis.Redis, prefix: str, owned: tuple[int, ...]) -> None:
    await conn.execute("TRUNCATE orders, command_queue")
    keys = [stream_key(prefix, p) for p in owned]
    await red.delete(*keys)
    for key in keys:
        await red.xgroup_create(key, GROUP_NAME, id="0", mkstream=True)


async def database_stats(conn: psycopg.AsyncConnection[Any], red: aioredis.Redis) -> tuple[int, float]:
    row = await (await conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).fetchone()
    assert row is not None
    info = await red.info("cpu")
    return int(row[0]), float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@dataclass
class Run:
    cfg: Config
    producer: Side
    owner: Side | None
    wal_bytes: int
    redis_cpu_s: float

    @property
    def label(self) -> str:
        return self.cfg.mode

    def produced_per_s(self) -> float:
        return self.producer.commands / max(1e-9, (self.producer.end_ns - self.producer.start_ns) / 1e9)

    def delivered_per_s(self) -> float:
        if self.owner is None:
            return self.produced_per_s()
        return self.owner.commands / max(1e-9, (self.owner.end_ns - self.producer.start_ns) / 1e9)


async def measure(cfg: Config) -> Run:
    red = aioredis.Redis.from_url(REDIS_URL)
    conn = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
    await reset(conn, red, cfg.prefix, cfg.owned)
    await conn.execute("CHECKPOINT")  # no checkpoint's full-page writes inside one candidate's window only
    ctx = multiprocessing.get_context("spawn")
    go, expected, out = ctx.Event(), ctx.Value("q", -1), ctx.Queue()
    procs = []
    roles = ["producer"] if cfg.mode == "baseline" else ["consumer", "producer"]
    for role in roles:
        ready = ctx.Event()
        proc = ctx.Process(target=child, args=(role, cfg, ready, go, expected, out), daemon=True)
        proc.start()
        procs.append((role, proc))
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 30)
    wal0, rcpu0 = await database_stats(conn, red)
    go.set()
    loop = asyncio.get_running_loop()
    producer_side = await loop.run_in_executor(None, out.get, True, cfg.seconds + 60)
    if producer_side.error:  # the owner waits for the producer's count: the producer answers first
        raise RuntimeError(producer_side.error)
    owner_side: Side | None = None
    if cfg.mode != "baseline":
        expected.value = producer_side.commands
        owner: Side = await loop.run_in_executor(None, out.get, True, 60)
        if owner.error and not owner.commands:
            raise RuntimeError(owner.error)
        owner_side = owner
    wal1, rcpu1 = await database_stats(conn, red)
    for _, proc in procs:
        proc.join(10)
    await conn.close()
    await red.aclose()
    return Run(cfg, producer_side, owner_side, wal1 - wal0, rcpu1 - rcpu0)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def print_throughput(runs: list[Run], group: int) -> None:
    base = runs[0]
    base_cpu = base.producer.cpu_s / base.producer.commands * 1e6
    base_back = base.producer.backend_cpu_s / base.producer.commands * 1e6
    base_wal = base.wal_bytes / base.producer.commands
    print(f"\n== max throughput, {group} order(s) per commit, {base.cfg.connections} producer connections ==")
    print(
        f"{'':9} {'produced/s':>11} {'delivered/s':>12} {'producer µs':>12} {'PG intake µs':>13} "
        f"{'owner µs':>9} {'PG owner µs':>12} {'redis µs':>9} {'WAL B':>7}   (µs CPU and WAL bytes per command)"
    )
    for run in runs:
        n = run.producer.commands
        owner = run.owner
        owner_cpu = f"{owner.cpu_s / max(1, owner.commands) * 1e6:9.0f}" if owner else f"{'-':>9}"
        owner_back = f"{owner.backend_cpu_s / max(1, owner.commands) * 1e6:12.0f}" if owner else f"{'-':>12}"
        prod_cpu = run.producer.cpu_s / n * 1e6
        back = run.producer.backend_cpu_s / n * 1e6
        wal = run.wal_bytes / n
        print(
            f"{run.label:9} {run.produced_per_s():11,.0f} {run.delivered_per_s():12,.0f} {prod_cpu:12.0f} "
            f"{back:13.0f} {owner_cpu} {owner_back} {run.redis_cpu_s / n * 1e6:9.1f} {wal:7.0f}"
        )
        if run is not base:
            print(
                f"{'  ratio':9} {ratio(run.produced_per_s(), base.produced_per_s()):>11} "
                f"{ratio(run.delivered_per_s(), base.produced_per_s()):>12} {ratio(prod_cpu, base_cpu):>12} "
                f"{ratio(back, base_back):>13} {'':9} {'':12} {'':9} {ratio(wal, base_wal):>7}"
            )
        if owner and owner.error:
            print(f"    !! {owner.error}")
        if owner:
            print(
                f"    owner: {owner.commands:,} commands in {owner.batches:,} batches, {owner.empty_drains} empty reads"
            )


def print_paced(runs: list[Run]) -> None:
    base = runs[0]
    base_intake = [v / 1e6 for v in base.producer.intake_ns]
    rate = base.cfg.rate
    print(f"\n== paced {rate:,.0f}/s, one order per commit, {base.cfg.seconds:.0f} s (ms) ==")
    print(
        f"{'':9} {'answered/s':>10} {'intake p50':>11} {'p99':>7} {'commit->owner p50':>18} {'p99':>7} "
        f"{'start->owner p50':>17} {'p99':>7} {'lost':>5}"
    )
    for run in runs:
        intake = [v / 1e6 for v in run.producer.intake_ns]
        answered = run.produced_per_s()
        flag = " !!" if answered < 0.95 * rate else ""
        line = f"{run.label:9} {answered:10,.0f} {pct(intake, 0.5):11.2f} {pct(intake, 0.99):7.2f}"
        if run.owner is None:
            line += f" {'-':>18} {'-':>7} {'(= intake)':>17} {'':>7} {'':>5}"
        else:
            has = run.owner.stamps
            lat = [(has[o] - t) / 1e6 for o, t in run.producer.stamps.items() if o in has]
            whole = [(has[o] - t) / 1e6 for o, t in run.producer.begun.items() if o in has]
            lost = len(run.producer.stamps) - len(lat)
            line += (
                f" {pct(lat, 0.5):18.2f} {pct(lat, 0.99):7.2f} {pct(whole, 0.5):17.2f} {pct(whole, 0.99):7.2f} {lost:5}"
            )
            line += (
                f"\n{'  ratio':9} {'':10} {ratio(pct(intake, 0.5), pct(base_intake, 0.5)):>11} "
                f"{ratio(pct(intake, 0.99), pct(base_intake, 0.99)):>7} {'':18} {'':7} "
                f"{ratio(pct(whole, 0.5), pct(base_intake, 0.5)):>17} "
                f"{ratio(pct(whole, 0.99), pct(base_intake, 0.99)):>7}"
            )
        print(line + flag)


async def setup_database() -> None:
    async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DB_NAME}")
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(SCHEMA)


async def cleanup(prefix: str) -> None:
    with contextlib.suppress(Exception):
        async with await psycopg.AsyncConnection.connect(PG_ADMIN, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    with contextlib.suppress(Exception):
        red = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in red.scan_iter(match=f"{prefix}*")]
        if keys:
            await red.delete(*keys)
        await red.aclose()


async def main(args: argparse.Namespace) -> None:
    prefix = f"tw-bench-routing:{uuid.uuid4().hex[:8]}:"
    owned = tuple(range(args.partitions))
    accounts = tuple(
        account for account in (f"acct-{n:05d}" for n in range(100_000)) if partition_of(account) in owned
    )[:500]
    parts = args.only or ["throughput", "paced", "takeover"]
    print(
        f"command routing: {os.cpu_count()} cores, owner of {len(owned)} of {ALL_PARTITIONS} partitions, "
        f"{len(accounts)} accounts, prefix {prefix!r}; load average {os.getloadavg()[0]:.2f}"
    )
    started = time.monotonic()
    await setup_database()
    try:
        if "throughput" in parts:
            for group in (1, args.group):
                runs = [
                    await measure(
                        Config(
                            mode, prefix, owned, accounts, args.connections, group, args.seconds, poll_ms=args.poll_ms
                        )
                    )
                    for mode in MODES
                ]
                print_throughput(runs, group)
        if "paced" in parts:
            for rate in (200.0, 1000.0):
                runs = [
                    await measure(
                        Config(
                            mode,
                            prefix,
                            owned,
                            accounts,
                            args.connections,
                            1,
                            args.paced_seconds,
                            rate,
                            True,
                            args.poll_ms,
                        )
                    )
                    for mode in MODES
                ]
                print_paced(runs)
        if "takeover" in parts:
            print(f"\n== takeover: {args.takeover:,} unacknowledged commands of a SIGKILLed owner ==")
            for mode in ("redis", "pgqueue"):
                result = await takeover(mode, prefix, owned, args.takeover, accounts)
                how = (
                    "XAUTOCLAIM over each stream"
                    if mode == "redis"
                    else "drains after the backend's rollback (pgpoll: the same)"
                )
                print(
                    f"{mode:9} new owner holds {result['got']:,}/{result['count']:,} after {result['ms']:.1f} ms "
                    f"({result['calls']} calls, {result['cpu_ms']:.0f} ms CPU in the new owner): {how}"
                )
    finally:
        await cleanup(prefix)
    print(f"\n(total {time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="closed-loop window per measurement")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8, help="producer connections")
    parser.add_argument("--group", type=int, default=32, help="orders per commit in the grouped variant")
    parser.add_argument("--partitions", type=int, default=22, help="partitions the owner holds (of 64)")
    parser.add_argument("--takeover", type=int, default=5000, help="unacknowledged commands at the kill")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="pgpoll: owner's sleep after an empty drain")
    parser.add_argument("--only", action="append", choices=["throughput", "paced", "takeover"])
    sys.exit(run_loop(main(parser.parse_args())))

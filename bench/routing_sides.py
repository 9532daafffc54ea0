"""bench/command_routing.py's processes: the producer (intake-like transactions, then the mode's routing), the
owner (consumer) that drains its partitions, and the takeover of a dead owner's unacknowledged commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import time
from typing import Any

import psycopg
import redis.asyncio as aioredis
from routing_parts import (
    DRAIN,
    DRAIN_LIMIT,
    ENQUEUE,
    ENQUEUE_QUIET,
    GROUP_NAME,
    INSERT_ORDER,
    OWNER_WRITE,
    PG_URL,
    QUEUE_MODES,
    READ_COUNT,
    REDIS_MODES,
    REDIS_URL,
    Config,
    Side,
    backend_pid,
    partition_of,
    payload,
    pid_cpu,
    process_cpu,
    reset,
    run_loop,
    stream_key,
    wake_channel,
)

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

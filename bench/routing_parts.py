"""bench/command_routing.py's shared parts: the scratch schema and statements, a run's configuration, what each
process measured, and small helpers (partitions, keys, CPU readings)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
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


async def reset(conn: psycopg.AsyncConnection[Any], red: aioredis.Redis, prefix: str, owned: tuple[int, ...]) -> None:
    await conn.execute("TRUNCATE orders, command_queue")
    keys = [stream_key(prefix, p) for p in owned]
    await red.delete(*keys)
    for key in keys:
        await red.xgroup_create(key, GROUP_NAME, id="0", mkstream=True)

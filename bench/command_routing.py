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
import multiprocessing
import os
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import redis.asyncio as aioredis
from routing_parts import (
    ALL_PARTITIONS,
    DB_NAME,
    MODES,
    PG_ADMIN,
    PG_URL,
    REDIS_URL,
    SCHEMA,
    Config,
    Side,
    partition_of,
    reset,
    run_loop,
)
from routing_sides import child, takeover

# ---- orchestration ---------------------------------------------------------------------------------------------


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

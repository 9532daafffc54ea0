"""Replicas of the real app (`python main.py`) in CLUSTER mode as child processes on loopback ports, sharing the
test session's PostgreSQL database and the machine's Redis (a key prefix per cluster)."""

from __future__ import annotations

import itertools
import os
import secrets
import signal
from pathlib import Path

from sqlalchemy import text

from storage.db import create_db_engine
from tests.e2e.app_process import AppProcess

_clusters = itertools.count()


class Cluster:
    def __init__(self, root: Path, size: int, database_url: str, redis_url: str, **env: str) -> None:
        prefix = f"twtest-{os.getpid()}-{next(_clusters)}-{secrets.token_hex(3)}:"
        shared = {  # every replica must open the others' tokens, cookies and sealed keys
            "JWT_SECRET": secrets.token_urlsafe(32),
            "STORAGE_SECRET": secrets.token_urlsafe(32),
            "ENCRYPTION_KEY": secrets.token_urlsafe(32),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL_PREFIX": prefix,
            "CLUSTER": "true",
            "CLUSTER_PARTITIONS": "8",
            "LEASE_TTL_SECONDS": "2",
            **env,
        }
        self.database_url = database_url
        self.replicas = []
        for n in range(size):
            data_dir = root / f"replica-{n}"
            data_dir.mkdir(parents=True, exist_ok=True)
            self.replicas.append(AppProcess(data_dir, **shared))

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()

    def kill(self) -> None:
        for replica in self.replicas:
            exited = replica.process.poll() if replica.process is not None else None
            replica.kill()
            # pytest shows this only for a failed test: what each replica said last, and how it ended.
            print(f"--- replica {replica.url}: exit code before the kill {exited}\n{replica.log.read_text()[-3000:]}")

    def pause(self, replica: AppProcess) -> None:
        assert replica.process is not None
        replica.process.send_signal(signal.SIGSTOP)

    def resume(self, replica: AppProcess) -> None:
        assert replica.process is not None
        replica.process.send_signal(signal.SIGCONT)

    def lease_owners(self) -> dict[str, str]:
        """Partition lease name -> owner replica id, for the live (unexpired) leases."""
        engine = create_db_engine(self.database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT name, owner FROM leases WHERE name LIKE 'exec:%'"
                        " AND expires_at_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint"
                    )
                ).all()
        finally:
            engine.dispose()
        return {name: owner for name, owner in rows}

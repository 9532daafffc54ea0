"""Periodic jobs (apscheduler): reconcile exchange accounts with the venue (the fallback when a user-data stream
misses something) and sweep PENDING paper orders that no command carries."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.execution.core import ExecutionCore
from app.execution.exchange import ExchangeExecutor

RECONCILE_EVERY_SECONDS = 30
SWEEP_EVERY_SECONDS = 5


class Jobs:
    def __init__(self, external: ExchangeExecutor, core: ExecutionCore) -> None:
        self.external = external
        self.core = core
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        self.scheduler.add_job(
            self.external.reconcile_all,
            "interval",
            seconds=RECONCILE_EVERY_SECONDS,
            id="reconcile-exchange-accounts",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.core.sweep_pending,
            "interval",
            seconds=SWEEP_EVERY_SECONDS,
            id="sweep-pending-paper-orders",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

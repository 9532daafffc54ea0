"""Periodic jobs (apscheduler): reconcile exchange accounts with the venue (the fallback when a user-data stream
misses something), sweep PENDING paper orders that no command carries, and take equity snapshots (every account
each minute, accounts whose balances changed every few seconds; old ones thinned hourly)."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.equity import EquityRecorder
from app.execution.core import ExecutionCore
from app.execution.exchange import ExchangeExecutor

RECONCILE_EVERY_SECONDS = 30
SWEEP_EVERY_SECONDS = 5
EQUITY_ALL_EVERY_SECONDS = 60
EQUITY_CHANGED_EVERY_SECONDS = 5
EQUITY_THIN_EVERY_SECONDS = 3600


class Jobs:
    def __init__(self, external: ExchangeExecutor, core: ExecutionCore, equity: EquityRecorder | None = None) -> None:
        self.external = external
        self.core = core
        self.equity = equity
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
        if self.equity is not None:
            for job, seconds, name in (
                (self.equity.snapshot_all, EQUITY_ALL_EVERY_SECONDS, "equity-snapshot-all"),
                (self.equity.flush_changed, EQUITY_CHANGED_EVERY_SECONDS, "equity-snapshot-changed"),
                (self.equity.thin, EQUITY_THIN_EVERY_SECONDS, "equity-thin"),
            ):
                self.scheduler.add_job(job, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

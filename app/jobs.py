"""Periodic jobs (apscheduler): reconcile exchange accounts with the venue — the fallback when a user-data stream
misses something."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.external_execution import ExternalExecution

RECONCILE_EVERY_SECONDS = 30


class Jobs:
    def __init__(self, external: ExternalExecution) -> None:
        self.external = external
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
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

"""The service container: built once from settings by main.py (or by a test), started and stopped with the app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.accounts import AccountService
from app.auth import AuthService
from app.config import Settings, decode_key
from app.crypto import KeyBox
from storage.db import Database
from storage.migrate import upgrade_to_head

log = logging.getLogger(__name__)

STALE_AFTER_MS = 10_000


@dataclass
class Services:
    settings: Settings
    db: Database
    keybox: KeyBox
    auth: AuthService
    accounts: AccountService
    started: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Start background work (market feed, execution engine, jobs)."""
        self.started = True

    async def stop(self) -> None:
        self.started = False
        self.db.close()

    def market_data_status(self) -> str:
        return "stale"


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Wire every service from settings. Applies migrations first, so the schema is current before any query."""
    db = Database(settings.database_url)
    if migrate:
        upgrade_to_head(db.engine)
    keybox = KeyBox(decode_key(settings.encryption_key))
    return Services(
        settings=settings,
        db=db,
        keybox=keybox,
        auth=AuthService(db, settings),
        accounts=AccountService(db),
    )

"""Tradewind's composition root: settings -> services -> API routes and pages -> ui.run. No logic here."""

from __future__ import annotations

import os
import sys

from nicegui import app, ui
from nicegui.storage import Storage

from app.api import mount_api, security_headers
from app.api.server_options import uvicorn_options
from app.config import SettingsError, configure_logging, load_settings
from app.services import build_services
from components.pages import register_pages
from storage.wal_checkpoint import WalCheckpointer


def main() -> None:
    configure_logging()
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"tradewind: {exc}\n")
        raise SystemExit(2) from None
    if "NICEGUI_STORAGE_PATH" not in os.environ:
        Storage.path = (settings.data_dir / "nicegui").resolve()
    services = build_services(settings)
    app.state.services = services
    mount_api(app)
    security_headers.install(app, cookie_secure=settings.cookie_secure)  # after mount_api: wraps both stacks
    register_pages(services)
    app.on_startup(services.start)
    app.on_shutdown(services.stop)
    checkpointer = WalCheckpointer.for_engine(services.db.engine)  # SQLite: checkpoints off the event loop
    if checkpointer is not None:
        app.on_startup(checkpointer.start)
        app.on_shutdown(checkpointer.stop)
    ui.run(
        host=settings.host,
        port=settings.port,
        title="Tradewind",
        language="en-US",  # <html lang>: screen readers pick the voice from it
        storage_secret=settings.storage_secret,
        reload=False,
        show=False,
        fastapi_docs=True,
        reconnect_timeout=10,
        uvicorn_logging_level="warning",
        show_welcome_message=False,
        **uvicorn_options(settings),
    )


if __name__ in {"__main__", "__mp_main__"}:
    main()

"""uvicorn options that the API's limits depend on; main.py passes them through `ui.run`, tests to their server."""

from __future__ import annotations

from typing import Any

from app.config import Settings

# Inbound WebSocket messages above this are refused with close code 1009 while they arrive, never read whole.
# uvicorn applies it to every socket of the process, NiceGUI's page socket too (whose messages are small).
WS_MAX_BYTES = 64 * 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """`ws_max_size` and proxy-header support: the client address comes from X-Forwarded-For only when the peer
    is one of FORWARDED_ALLOW_IPS (docs/security.md)."""
    return {
        "ws_max_size": WS_MAX_BYTES,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }

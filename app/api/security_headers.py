"""Security headers on every HTTP response (pages, NiceGUI's own routes, the API) and the `Secure` cookie flag
over HTTPS.

A pure ASGI wrapper around the whole middleware stack: it runs for both of fast_lane's stacks (API requests skip
NiceGUI's page middleware) and costs one header pass per response. Headers a route sets itself are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CookieSecure = Literal["auto", "true", "false"]
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "same-origin"),
)
_RAW = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS]
_WRAPPED = "_tradewind_security_headers_wraps"


class SecurityHeaders:
    """Adds HEADERS to every HTTP response, and marks every cookie `Secure` when `cookie_secure` is "true", or
    "auto" and the request came over HTTPS (scope scheme; uvicorn sets it from a trusted proxy's
    X-Forwarded-Proto)."""

    def __init__(self, app: ASGIApp, cookie_secure: CookieSecure = "auto") -> None:
        self.app = app
        self.cookie_secure = cookie_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.cookie_secure == "true" or (self.cookie_secure == "auto" and scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # On the raw list (what MutableHeaders would write, lower-case names): this runs for every API
                # response, the order path's too, and the wrapper cost more than the headers.
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in _RAW if header[0] not in present)
                if secure:
                    headers = [_secure_cookie(name, value) for name, value in headers]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secure_cookie(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name.lower() != b"set-cookie":
        return name, value
    if any(part.strip().lower() == b"secure" for part in value.split(b";")[1:]):
        return name, value
    return name, value + b"; secure"


def install(app: FastAPI, *, cookie_secure: CookieSecure = "auto") -> None:
    """Wrap the app's middleware stack (built lazily by Starlette) in SecurityHeaders.

    Call after `fast_lane.install`, which replaces the stack builder. Idempotent: NiceGUI's test fixture runs
    main.py again on the same app object; a second call re-wraps what the first one wrapped instead of nesting.
    """
    current = app.build_middleware_stack
    inner: Callable[[], ASGIApp] = getattr(current, _WRAPPED, current)

    def build() -> ASGIApp:
        return SecurityHeaders(inner(), cookie_secure)

    setattr(build, _WRAPPED, inner)
    app.build_middleware_stack = build  # type: ignore[method-assign]

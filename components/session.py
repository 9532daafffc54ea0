"""Browser sessions: the NiceGUI middleware that sends unauthenticated page loads to /login, and helpers that
re-check the session user in pages and action handlers (the middleware only guards page loads)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import Request, Response
from nicegui import app, ui
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import RedirectResponse

from app.api.errors import is_api_path
from app.auth import UNKNOWN_ADDRESS, AuthenticatedUser

if TYPE_CHECKING:
    from app.services import Services

PUBLIC_PAGES = frozenset({"/login", "/register", "/favicon.ico"})


class AuthMiddleware(BaseHTTPMiddleware):
    """Redirect page loads without a logged-in session to /login?redirect_to=<path>."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        public = path in PUBLIC_PAGES or path.startswith("/_nicegui") or is_api_path(path)
        if not public and not app.storage.user.get("user_id"):
            return RedirectResponse(f"/login?redirect_to={quote(path)}")
        return await call_next(request)


def install(_services: Services) -> None:
    app.add_middleware(AuthMiddleware)


def log_in(user: AuthenticatedUser, token_version: int) -> None:
    app.storage.user.update(user_id=user.id, email=user.email, token_version=token_version)


def log_out() -> None:
    app.storage.user.clear()


async def current_user(services: Services) -> AuthenticatedUser | None:
    """The session's user if the session is still valid (not logged out everywhere, user exists)."""
    storage = app.storage.user
    return await services.auth.session_user(storage.get("user_id"), storage.get("token_version"))


def client_address() -> str:
    """Inside a page function: the browser's IP address (through a trusted proxy: the forwarded one), for the
    login and sign-up throttles."""
    request = ui.context.client.request
    return request.client.host if request.client else UNKNOWN_ADDRESS


def safe_redirect(target: str | None) -> str:
    """Only local paths: refuse `//evil.example` and `javascript:` style open redirects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

"""Browser sessions: the NiceGUI middleware that sends unauthenticated page loads to /login, log-in with a renewed
session id, POST /logout, and helpers that re-check the session user in pages and action handlers (the middleware
only guards page loads).

NiceGUI keys `app.storage.user` by a random id in Starlette's signed session cookie. A login happens in a page's
event handler (over the socket, where no cookie can be set), so it parks the user under a one-time ticket and sends
the browser through LOGIN_SESSION_PATH: that request gets a new session id (a session id planted before the login,
session fixation, is left empty) and the user storage of the new id holds the login.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from nicegui import app, ui
from nicegui.persistence import PersistentDict
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import PlainTextResponse, RedirectResponse

from app.api.errors import is_api_path
from app.auth import UNKNOWN_ADDRESS, AuthenticatedUser

if TYPE_CHECKING:
    from app.services import Services

LOGIN_SESSION_PATH = "/login/session"
PUBLIC_PAGES = frozenset({"/login", "/register", "/favicon.ico", "/logout", LOGIN_SESSION_PATH})
LOGIN_TICKET_SECONDS = 60.0
KEPT_PREFERENCES = ("dark_mode",)  # carried from the anonymous session into the logged-in one


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
    app.add_api_route(LOGIN_SESSION_PATH, _renew_session, methods=["GET"], include_in_schema=False)


@dataclass(frozen=True, slots=True)
class _PendingLogin:
    session_id: str
    user: AuthenticatedUser
    token_version: int
    target: str
    expires: float


_pending: dict[str, _PendingLogin] = {}  # one-time ticket -> login waiting for its session renewal


def log_in(user: AuthenticatedUser, token_version: int, target: str = "/") -> None:
    """Log the browser in from a page's event handler: navigates through LOGIN_SESSION_PATH (new session id), then
    to `target` (a local path)."""
    now = time.monotonic()
    for ticket, pending in list(_pending.items()):
        if pending.expires < now:
            del _pending[ticket]
    ticket = secrets.token_urlsafe(32)
    session_id = str(app.storage.browser.get("id", ""))
    _pending[ticket] = _PendingLogin(session_id, user, token_version, safe_redirect(target), now + LOGIN_TICKET_SECONDS)
    ui.navigate.to(f"{LOGIN_SESSION_PATH}?ticket={ticket}")


def keep(user: AuthenticatedUser, token_version: int) -> None:
    """Update the logged-in session in place (e.g. the new token version after a password change)."""
    app.storage.user.update(user_id=user.id, email=user.email, token_version=token_version)


def log_out() -> None:
    app.storage.user.clear()


def leave() -> None:
    """The log-out control (user menu, the /logout page's button): an event of the page, handled on the server,
    which no link or form on another site can trigger. Ends this browser's session and shows /login."""
    log_out()
    ui.navigate.to("/login")


async def current_user(services: Services) -> AuthenticatedUser | None:
    """The session's user if the session is still valid (not logged out everywhere, user exists)."""
    storage = app.storage.user
    return await services.auth.session_user(storage.get("user_id"), storage.get("token_version"))


async def page_user(services: Services) -> AuthenticatedUser | None:
    """Inside a page function: the session's user, or None once the browser is on its way to /login (the session
    ended: its storage is emptied too)."""
    user = await current_user(services)
    if user is None:
        log_out()
        ui.navigate.to("/login")
    return user


def client_address() -> str:
    """Inside a page function: the browser's IP address (through a trusted proxy: the forwarded one), for the
    login and sign-up throttles."""
    request = ui.context.client.request
    return request.client.host if request.client else UNKNOWN_ADDRESS


def safe_redirect(target: str | None) -> str:
    """Only a local path: refuse `//evil.example`, `/\\evil.example`, `/%09/evil.example` (browsers drop tabs and
    newlines, and read a backslash as a slash) and `javascript:` style targets."""
    if not target or not target.startswith("/") or len(target) > 2000:
        return "/"
    if any(not ch.isprintable() or ch.isspace() or ch == "\\" for ch in target) or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


async def _renew_session(request: Request, ticket: str = "") -> Response:
    """Second half of a login: a new session id whose user storage holds the user, the old one emptied."""
    pending = _pending.pop(ticket, None)
    old_id = str(request.session.get("id", ""))
    if pending is None or pending.expires < time.monotonic() or not secrets.compare_digest(pending.session_id, old_id):
        return RedirectResponse("/login", status_code=303)
    old = app.storage._users.get(old_id)  # NiceGUI's user storages by session id
    kept = {key: old[key] for key in KEPT_PREFERENCES if old is not None and key in old}
    if old is not None:
        old.clear()
    new_id = str(uuid.uuid4())
    storage = await _user_storage(new_id)
    storage.update(kept, user_id=pending.user.id, email=pending.user.email, token_version=pending.token_version)
    request.session["id"] = new_id
    return RedirectResponse(pending.target, status_code=303)


async def _user_storage(session_id: str) -> PersistentDict:
    """The user storage of `session_id`, created the way NiceGUI's RequestTrackingMiddleware creates it."""
    storage = app.storage
    await storage._create_user_storage(session_id)
    return storage._users[session_id]


async def logout_endpoint(request: Request) -> Response:
    """POST /logout: end the browser session. A cross-site form cannot (the SameSite=Lax cookie is not sent, and
    a foreign Origin is refused). Registered by the /logout page module, after the page: a page replaces every
    route of its path."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return PlainTextResponse("Cross-origin log-out refused.", status_code=403)
    session_id = request.session.get("id")
    storage = app.storage._users.get(str(session_id)) if session_id else None
    if storage is not None:
        storage.clear()
    request.session.clear()  # the browser gets a fresh session id on its next request
    return RedirectResponse("/login", status_code=303)

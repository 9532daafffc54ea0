"""Every API error in one shape: {"error": {"code", "message", "field"}}. The mapping lives here and only here."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import Throttled, TradewindError

log = logging.getLogger(__name__)

NUL = "\x00"

API_PREFIXES = ("/api", "/auth", "/health", "/ws", "/openapi.json", "/docs")
MAX_BODY_BYTES = 1_000_000

HTTP_CODES = {
    # FastAPI's only 400 (HTTPException): a body it could not parse other than as bad JSON (bytes that are not
    # UTF-8, nesting too deep, an integer of thousands of digits). The API's other 400s are MALFORMED_JSON too.
    400: "MALFORMED_JSON",
    401: "NOT_AUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "THROTTLED",
}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers or None)


def service_error_response(exc: TradewindError) -> JSONResponse:
    """The answer to a service's error (the routes' handler and app/api/order_lane.py share it)."""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else {}
    if exc.status >= 500:
        log.error("service error reached the API: %s", exc)
    return error_response(exc.status, exc.code, exc.message, exc.field, **headers)


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def install_error_handlers(app: FastAPI) -> None:
    """Map service errors, validation errors and HTTP errors to the API.md shape (pages keep NiceGUI's 404)."""
    page_404 = app.exception_handlers.get(404)

    async def on_tradewind_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TradewindError)
        return service_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"type": "", "loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return error_response(400, "MALFORMED_JSON", "The request body is not valid JSON.")
        context = first.get("ctx")
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        if isinstance(context, dict) and "field" in context:  # a check over the whole body (StrictBody) names it
            field: str | None = str(context["field"])
        else:
            field = _top_level_field(location, exc.body)
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "extra_forbidden":
            message = "unknown field"
        if first.get("type") == "missing" and field is None:
            return error_response(400, "MALFORMED_JSON", "A JSON body is required.")
        return error_response(422, "VALIDATION_ERROR", f"{field}: {message}" if field else message, field)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and page_404 is not None and not is_api_path(request.url.path):
            response = page_404(request, exc)
            return await response if inspect.isawaitable(response) else response
        code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return error_response(exc.status_code, code, message, None, **headers)

    app.add_exception_handler(TradewindError, on_tradewind_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(404, on_http_error)
    app.add_exception_handler(405, on_http_error)


def _top_level_field(location: list[str], body: object) -> str | None:
    """The request field an error's location points at. Deeper parts are union member names ("str", "float") or
    list indexes; a body that is a tagged union (POST /api/accounts: `venue`) puts the tag ("paper") first."""
    if not location:
        return None
    if isinstance(body, dict) and location[0] not in body and len(location) > 1:
        return location[1]
    return location[0]


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette's own 405 names only the first route's methods)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not Content-Length is honest."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "PAYLOAD_TOO_LARGE", f"The request body exceeds {self.limit} bytes.")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class RefuseNulInUrl:
    """422 for an API request whose path or query string carries a NUL character (`%00`; pages keep theirs). Ids
    and filters from the URL reach the database, and PostgreSQL's text cannot hold NUL: the statement would fail, a
    500 (SQLite would answer 404). No id, symbol or filter has a use for it. Bodies are checked by their models
    (app/api/strict_body.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _nul_in_url(scope) and is_api_path(scope["path"]):
            response = error_response(422, "VALIDATION_ERROR", "The URL must not contain NUL characters (%00).")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _nul_in_url(scope: Scope) -> bool:
    return NUL in scope["path"] or b"%00" in scope.get("query_string", b"")


# The API's own middleware: the fast lane (app/api/fast_lane.py) builds the API's stack with these only.
API_MIDDLEWARE = (BodySizeLimit, RefuseNulInUrl)

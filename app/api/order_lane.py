"""POST /api/trading/orders straight to the order service, without FastAPI's routing and dependency solving.

A profile of the load bench (docs/orders.md, "Speed") put FastAPI's route matching (a linear walk over every
route), dependency solving, body handling and handler wrappers at ~380 µs of CPU per order: more than a bare
FastAPI POST costs in all. fast_lane hands this one route here. It serves the request every bot sends — a JSON
body that validates as `OrderCreate` and a bearer token — and hands everything else to the FastAPI route, body
replayed, untouched: another content type, a body without Content-Length or over the limit, malformed JSON, a body
that fails validation, no bearer token. So every one of those answers (and which error wins when several apply)
stays exactly FastAPI's. Past validation the lane does what the route does, in the same order: authenticate (a
login token or an API key with the `trade` scope), submit, answer 202 with the stored order's bytes (200 with the
existing order for a repeated client_order_id); the services' errors get the routes' error mapping.

The route in app/api/trading.py stays: it documents the operation in /openapi.json and serves the hand-overs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import may_trade, user_of_token
from app.api.errors import MAX_BODY_BYTES, service_error_response
from app.api.schemas import OrderCreate, OrderPublic
from app.auth import UNKNOWN_ADDRESS
from app.errors import TradewindError
from app.orders import OrderRequest

if TYPE_CHECKING:
    from app.services import Services

METHOD = "POST"
PATH = "/api/trading/orders"
_JSON = [(b"content-type", b"application/json")]


async def place_order(scope: Scope, receive: Receive, send: Send, route: ASGIApp) -> None:
    """Serve POST /api/trading/orders, or hand it to `route` (the API's FastAPI stack) as it came."""
    token, length = _token_and_length(scope)
    if token is None or length is None:
        await route(scope, receive, send)
        return
    chunks, complete = await _read_body(receive, length)
    body = b"".join(chunks)
    order = _order(body) if complete else None
    if order is None:
        await route(scope, _replay(body, complete, receive), send)
        return
    services: Services = scope["app"].state.services
    client = scope.get("client")
    address = client[0] if client else UNKNOWN_ADDRESS
    try:
        user = may_trade(await user_of_token(services, token, address))
        submitted = await services.orders.submit(user.id, OrderRequest(**order.model_dump()))
    except TradewindError as error:
        await service_error_response(error)(scope, receive, send)
        return
    if submitted.created:
        assert submitted.json is not None  # the stored event's payload: the order, serialised once
        payload = submitted.json.encode()
        headers = [(b"content-length", str(len(payload)).encode()), *_JSON]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return
    existing = OrderPublic(**submitted.order).model_dump(mode="json", by_alias=True)
    await JSONResponse(existing, status_code=200)(scope, receive, send)


def _token_and_length(scope: Scope) -> tuple[str | None, int | None]:
    """The bearer token and the declared body length, when the request is JSON with both within bounds."""
    authorization = content_type = declared = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and declared is None:
            declared = value
    if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
        return None, None
    if declared is None or not declared.isdigit() or not 0 < int(declared) <= MAX_BODY_BYTES:
        return None, None
    # As fastapi.security.HTTPBearer reads the header (latin-1, as Starlette decodes headers).
    scheme, token = get_authorization_scheme_param(authorization.decode("latin-1") if authorization else None)
    if scheme.lower() != "bearer" or not token:
        return None, None
    return token, int(declared)


async def _read_body(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The body's chunks and whether it ended within `limit` bytes (else the caller replays what was read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the route see it as it would
            return chunks, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return chunks, False
        if not message.get("more_body", False):
            return chunks, True


def _order(body: bytes) -> OrderCreate | None:
    """The body as FastAPI would bind it (json.loads, then the model in Python mode), or None when it would
    refuse it."""
    try:
        return OrderCreate.model_validate(json.loads(body))
    except Exception:  # a ValidationError, undecodable JSON, nesting too deep: FastAPI gives those their answer
        return None


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """`receive` as if nothing had been read: what was read comes first, in one message."""
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": not complete}

    return again

"""Request dependencies, declared once as Annotated aliases.

Who may call what: `CurrentUser` is a login token or any API key; `TradingUser` a login token or a key with the
`trade` scope (403 SCOPE_REQUIRED otherwise); `LoginUser` a login token only (403 LOGIN_REQUIRED for API keys:
keys never manage keys, the password or sessions). Each is one dependency, so a JWT request pays for no extra layer.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, and that hop (a thread
wake-up and a GIL hand-over per request) cost more CPU than the order itself on the order path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api_keys import TRADE, looks_like_key
from app.auth import UNKNOWN_ADDRESS, AuthenticatedUser
from app.errors import Forbidden, NotAuthenticated

if TYPE_CHECKING:
    from app.services import Services

_bearer = HTTPBearer(
    auto_error=False, description="JWT from /auth/login or /auth/register, or an API key `tw_…` (/api/api-keys)"
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_services(request: Request) -> Services:
    return services_of(request)


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> AuthenticatedUser:
    """The caller behind a bearer JWT or API key; NotAuthenticated without a valid one."""
    if credentials is None:
        raise NotAuthenticated("Send 'Authorization: Bearer <token>'.", code="NOT_AUTHENTICATED")
    return await user_of_token(services_of(request), credentials.credentials, address_of(request))


async def user_of_token(services: Services, token: str, address: str) -> AuthenticatedUser:
    """The caller behind a bearer token (a JWT or an API key) sent from `address`."""
    if looks_like_key(token):
        return await services.api_keys.authenticate(token, address)
    return await services.auth.user_from_token(token)


def may_trade(user: AuthenticatedUser) -> AuthenticatedUser:
    """`user`, or 403 SCOPE_REQUIRED for an API key without the `trade` scope."""
    if user.scopes is not None and TRADE not in user.scopes:
        raise Forbidden("This API key may only read; this call needs the 'trade' scope.", code="SCOPE_REQUIRED")
    return user


async def get_current_user(request: Request, credentials: Credentials) -> AuthenticatedUser:
    return await authenticate(request, credentials)


async def get_trading_user(request: Request, credentials: Credentials) -> AuthenticatedUser:
    return may_trade(await authenticate(request, credentials))


async def get_login_user(request: Request, credentials: Credentials) -> AuthenticatedUser:
    user = await authenticate(request, credentials)
    if user.api_key_id is not None:
        raise Forbidden("API keys cannot do this; use a login token (POST /auth/login).", code="LOGIN_REQUIRED")
    return user


def address_of(request: Request) -> str:
    """The client's IP address: the peer, or what a trusted proxy said (uvicorn's proxy headers,
    FORWARDED_ALLOW_IPS; docs/security.md)."""
    return request.client.host if request.client else UNKNOWN_ADDRESS


async def client_address(request: Request) -> str:
    return address_of(request)


ServicesDep = Annotated["Services", Depends(get_services)]
ClientAddress = Annotated[str, Depends(client_address)]
CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]
TradingUser = Annotated[AuthenticatedUser, Depends(get_trading_user)]
LoginUser = Annotated[AuthenticatedUser, Depends(get_login_user)]

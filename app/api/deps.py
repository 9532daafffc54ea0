"""Request dependencies, declared once as Annotated aliases.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, and that hop (a thread
wake-up and a GIL hand-over per request) cost more CPU than the order itself on the order path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import UNKNOWN_ADDRESS, AuthenticatedUser
from app.errors import NotAuthenticated

if TYPE_CHECKING:
    from app.services import Services

_bearer = HTTPBearer(auto_error=False, description="JWT from /auth/login or /auth/register")


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> AuthenticatedUser:
    if credentials is None:
        raise NotAuthenticated("Send 'Authorization: Bearer <token>'.", code="NOT_AUTHENTICATED")
    return await services_of(request).auth.user_from_token(credentials.credentials)


async def client_address(request: Request) -> str:
    """The client's IP address: the peer, or what a trusted proxy said (uvicorn's proxy headers,
    FORWARDED_ALLOW_IPS; docs/security.md)."""
    return request.client.host if request.client else UNKNOWN_ADDRESS


ServicesDep = Annotated["Services", Depends(get_services)]
ClientAddress = Annotated[str, Depends(client_address)]
CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]

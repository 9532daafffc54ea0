"""POST /auth/register, /auth/login, /auth/logout-all, /auth/password."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import Field

from app.api.deps import ClientAddress, LoginUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES, AuthResponse, Credentials, UserPublic
from app.api.strict_body import StrictBody

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


class PasswordChange(StrictBody):
    """Body of POST /auth/password."""

    current_password: str = Field(max_length=128)
    new_password: str = Field(max_length=128)


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: Credentials, services: ServicesDep, address: ClientAddress) -> AuthResponse:
    """Create a user and their paper account; answers with a token. 403 `REGISTRATION_CLOSED` while sign-up is
    closed; 429 `TOO_MANY_REGISTRATIONS` beyond REGISTER_LIMIT_PER_HOUR attempts per client address."""
    user = await services.auth.register(body.email, body.password, address)
    token = await services.auth.issue_token(user.id)
    return AuthResponse(token=token, user=UserPublic(id=user.id, email=user.email))


@router.post("/login")
async def login(body: Credentials, services: ServicesDep, address: ClientAddress) -> AuthResponse:
    """Exchange email and password for a token. 429 `TOO_MANY_ATTEMPTS` after 5 failures for one email from one
    client address, 20 failures from one address, or 50 failures for one email from addresses it never logged in
    from, within 15 minutes (docs/security.md)."""
    user = await services.auth.login(body.email, body.password, address)
    token = await services.auth.issue_token(user.id)
    return AuthResponse(token=token, user=UserPublic(id=user.id, email=user.email))


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def logout_all(user: LoginUser, services: ServicesDep, address: ClientAddress) -> None:
    """End every token, page session and WebSocket of the user, including this token (API keys stay)."""
    await services.auth.log_out_everywhere(user.id, address)


@router.post("/password")
async def change_password(
    body: PasswordChange, user: LoginUser, services: ServicesDep, address: ClientAddress
) -> AuthResponse:
    """Change the password. Every other token, page session and WebSocket of the user ends; the answer carries a
    new token for this client. 422 `WRONG_PASSWORD` (field `current_password`), throttled like login (429)."""
    version = await services.auth.change_password(user.id, body.current_password, body.new_password, address)
    token = await services.auth.issue_token(user.id, version)
    return AuthResponse(token=token, user=UserPublic(id=user.id, email=user.email))

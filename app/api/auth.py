"""POST /auth/register, POST /auth/login."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import ServicesDep
from app.api.schemas import ERROR_RESPONSES, AuthResponse, Credentials, UserPublic

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: Credentials, services: ServicesDep) -> AuthResponse:
    """Create a user and their paper account; answers with a token."""
    user = await services.auth.register(body.email, body.password)
    token = await services.auth.issue_token(user.id)
    return AuthResponse(token=token, user=UserPublic(id=user.id, email=user.email))


@router.post("/login")
async def login(body: Credentials, services: ServicesDep) -> AuthResponse:
    """Exchange email and password for a token (5 failures per 15 minutes per email, then 429)."""
    user = await services.auth.login(body.email, body.password)
    token = await services.auth.issue_token(user.id)
    return AuthResponse(token=token, user=UserPublic(id=user.id, email=user.email))

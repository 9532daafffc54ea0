"""Token verification: a token's signature is checked once, its expiry and version on every use."""

from __future__ import annotations

import asyncio

import jwt
import pytest

from app.auth import new_password_context
from app.errors import NotAuthenticated
from app.services import Services
from tests.factories import PASSWORD, unique_email


async def test_a_verified_token_still_expires_and_still_ends_with_its_session(services: Services) -> None:
    user = await services.auth.register(unique_email(), PASSWORD)
    services.auth.settings.jwt_expire_hours = 1.5 / 3600  # 1 s (whole seconds in the claim)
    token = await services.auth.issue_token(user.id)
    assert (await services.auth.user_from_token(token)).id == user.id
    assert (await services.auth.user_from_token(token)).id == user.id  # the second use skips the signature check
    await asyncio.sleep(1.2)
    with pytest.raises(NotAuthenticated) as expired:
        await services.auth.user_from_token(token)
    assert expired.value.code == "TOKEN_EXPIRED"
    services.auth.settings.jwt_expire_hours = 12
    fresh = await services.auth.issue_token(user.id)
    await services.auth.user_from_token(fresh)
    await services.auth.log_out_everywhere(user.id)
    with pytest.raises(NotAuthenticated):
        await services.auth.user_from_token(fresh)


async def test_a_forged_token_is_refused_every_time(services: Services) -> None:
    user = await services.auth.register(unique_email(), PASSWORD)
    forged = jwt.encode({"sub": user.id, "ver": 0, "iat": 1, "exp": 4_000_000_000}, "x" * 32, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            await services.auth.user_from_token(forged)


def test_passwords_are_hashed_with_argon2id_at_full_strength() -> None:
    """What the server hashes with (this test process hashes cheaply: tests/conftest.py)."""
    stored = new_password_context().hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # 64 MiB, 3 passes, 4 lanes
    assert new_password_context().verify(PASSWORD, stored)
    assert not new_password_context().verify(PASSWORD + "x", stored)

"""Webhook signatures, Stripe style: `Tradewind-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>." + body` with the webhook's secret. The timestamp lets a receiver refuse replays of old deliveries."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Tradewind-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that makes secrets recognisable, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret (shown to the user once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>." + body`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does (docs/api.md has the same steps): parse t and v1, refuse a timestamp more than
    `tolerance` seconds away from `now`, compare the HMAC in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))


def secret_binding(webhook_id: str) -> str:
    """AES-GCM associated data of a webhook's sealed secret: a ciphertext copied onto another row does not open."""
    return f"{webhook_id}/secret"

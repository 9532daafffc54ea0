"""Binance request signing (HMAC-SHA256) shared by the fake's REST and WebSocket-API layers."""

from __future__ import annotations

import hashlib
import hmac

# Binance's published HMAC test key pair (rest-api.md "SIGNED request example (HMAC)").
DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` with ``secret``, lowercase hex — Binance's SIGNED scheme."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify_signature(secret: str, payload: str, signature: str) -> bool:
    """Check a signature; HMAC signatures are not case sensitive on Binance."""
    return hmac.compare_digest(sign(secret, payload), signature.lower())


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Remove ``signature=...`` from a raw (still percent-encoded) parameter string."""
    if not raw:
        return "", None
    kept, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), sig

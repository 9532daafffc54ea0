"""Signatures: what a receiver verifies (HMAC-SHA256 of "t.body", with a replay window)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

from app.webhooks.signing import new_secret, sign, signature_header, verify

BODY = b'{"id":"01J","type":"fill","data":{}}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec_x", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("whsec_x", 1700000000, BODY) == expected
    assert signature_header("whsec_x", 1700000000, BODY) == f"t=1700000000,v1={expected}"


def test_verify_accepts_a_fresh_signature_and_refuses_changes_and_replays() -> None:
    secret = new_secret()
    header = signature_header(secret, 1000, BODY)
    assert verify(secret, header, BODY, now=1000)
    assert verify(secret, header, BODY, now=1300)
    assert not verify(secret, header, BODY, now=1301)  # older than the 5-minute window: a replay
    assert not verify(secret, header, BODY + b" ", now=1000)
    assert not verify(new_secret(), header, BODY, now=1000)
    assert not verify(secret, header.replace("t=1000", "t=1001"), BODY, now=1000)
    assert not verify(secret, "v1=abc", BODY, now=1000)


def test_secrets_are_fresh_and_recognisable() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_") and len(first) > 40


def test_the_verification_snippet_in_the_api_docs_accepts_our_signatures() -> None:
    """docs/api.md tells receivers how to verify: run that very code against a real signature."""
    docs = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    [snippet] = [block for block in re.findall(r"```python\n(.*?)```", docs, re.S) if "def verify_tradewind" in block]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    verify_tradewind = namespace["verify_tradewind"]
    secret, now = new_secret(), int(time.time())
    assert verify_tradewind(secret, signature_header(secret, now, BODY), BODY)  # type: ignore[operator]
    assert not verify_tradewind(secret, signature_header(secret, now - 301, BODY), BODY)  # type: ignore[operator]
    assert not verify_tradewind(secret, signature_header(secret, now, BODY), BODY + b"x")  # type: ignore[operator]

"""AES-256-GCM key sealing: round trip, fresh nonces, tamper and wrong-key detection, rotation."""

from __future__ import annotations

import base64
import os

import pytest

from app.crypto import DecryptionError, KeyBox


def test_round_trip_with_fresh_nonce_each_time() -> None:
    box = KeyBox(os.urandom(32))
    first, second = box.seal("api-secret", "acct1"), box.seal("api-secret", "acct1")
    assert first != second  # random 96-bit nonce per value
    assert "api-secret" not in first
    assert box.open(first, sealed_with=box.key_id, associated_data="acct1") == "api-secret"


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_tampered_ciphertext_raises(position: int) -> None:
    box = KeyBox(os.urandom(32))
    raw = bytearray(base64.b64decode(box.seal("api-secret")))
    raw[position] ^= 0x01
    with pytest.raises(DecryptionError):
        box.open(base64.b64encode(bytes(raw)).decode(), sealed_with=box.key_id)


def test_ciphertext_is_bound_to_its_owner() -> None:
    box = KeyBox(os.urandom(32))
    token = box.seal("api-secret", "account-a")
    with pytest.raises(DecryptionError):
        box.open(token, sealed_with=box.key_id, associated_data="account-b")


def test_wrong_key_and_garbage_raise() -> None:
    token = KeyBox(os.urandom(32)).seal("x")
    other = KeyBox(os.urandom(32))
    with pytest.raises(DecryptionError):
        other.open(token, sealed_with=other.key_id)
    with pytest.raises(DecryptionError):
        other.open("not base64!!", sealed_with=other.key_id)
    with pytest.raises(DecryptionError):
        other.open("AAAA", sealed_with=other.key_id)
    with pytest.raises(DecryptionError, match="no key"):
        other.open(token, sealed_with="unknown")


def test_rotation_opens_values_sealed_by_an_old_key() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    old = KeyBox(old_key)
    token = old.seal("api-secret")
    rotated = KeyBox(new_key, old_keys=(old_key,))
    assert rotated.key_id != old.key_id
    assert rotated.open(token, sealed_with=old.key_id) == "api-secret"


def test_has_key_names_the_current_and_old_keys_only() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    rotated = KeyBox(new_key, old_keys=(old_key,))
    assert rotated.has_key(KeyBox(old_key).key_id) and rotated.has_key(rotated.key_id)
    assert not rotated.has_key(KeyBox(os.urandom(32)).key_id)
    with pytest.raises(ValueError):
        KeyBox(new_key, old_keys=(b"short",))

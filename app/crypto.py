"""AES-256-GCM sealing of exchange keys. Each value gets a random 96-bit nonce; the key id travels with it so
keys can be rotated (old ciphertexts name the key that opens them)."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class DecryptionError(Exception):
    """The ciphertext was tampered with, truncated, or sealed under another key."""


class KeyBox:
    """Seals and opens short secrets. `associated_data` binds a ciphertext to its owner and purpose (e.g. the
    account id and the field), so a ciphertext copied onto another row or field does not open.

    Seals with the current key; opens with whichever configured key (current or old) the stored key id names."""

    def __init__(self, key: bytes, *, old_keys: tuple[bytes, ...] = ()) -> None:
        if len(key) != 32 or any(len(old) != 32 for old in old_keys):
            raise ValueError("AES-256 needs a 32-byte key")
        self.key_id = key_id(key)
        self._keys = {key_id(k): AESGCM(k) for k in (*old_keys, key)}

    def has_key(self, sealed_with: str) -> bool:
        """Whether values sealed under key id `sealed_with` can be opened here."""
        return sealed_with in self._keys

    def seal(self, plaintext: str, associated_data: str = "") -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.key_id].encrypt(nonce, plaintext.encode(), associated_data.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, token: str, *, sealed_with: str, associated_data: str = "") -> str:
        cipher = self._keys.get(sealed_with)
        if cipher is None:
            raise DecryptionError(f"no key with id {sealed_with} is configured (was ENCRYPTION_KEY changed?)")
        try:
            raw = base64.b64decode(token, validate=True)
        except ValueError:
            raise DecryptionError("ciphertext is not valid base64") from None
        if len(raw) <= NONCE_BYTES:
            raise DecryptionError("ciphertext is truncated")
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data.encode())
        except InvalidTag:
            raise DecryptionError("ciphertext failed authentication (tampered, or the wrong key)") from None
        return plain.decode()


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (not the key)."""
    return hashlib.sha256(b"tradewind-key-id:" + key).hexdigest()[:12]

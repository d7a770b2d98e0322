"""Opaque values the server hands out and takes back: authenticated encryption.

A sealed value is ``base64url(version || nonce || AES-256-GCM(plaintext))``.
The key is derived (HKDF-SHA256) from a configured secret and a purpose, so
one secret can serve several kinds of token without one kind being accepted
as another.  ``context`` (the caller's org, say) is authenticated but not
stored: a value sealed for one context does not open in another.  The random
nonce makes two seals of the same plaintext unrelated strings, and the
length is fixed by the plaintext's length, so a client learns nothing from a
sealed value but that the server issued it.  Pure (no I/O but the nonce).
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chalicelib.domain.keys import join_key

_VERSION = b"\x01"
_NONCE = 12
_TAG = 16
_ALPHABET = re.compile(r"^[A-Za-z0-9_-]{1,512}$")


def derive_key(secret: str, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=f"docs/{purpose}".encode())
    return hkdf.derive(secret.encode())


class Sealer:
    """Seal and open values of one purpose."""

    def __init__(self, secret: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(secret, purpose))
        self._purpose = purpose

    def _aad(self, context: str) -> bytes:
        return _VERSION + join_key(self._purpose, context).encode("utf-8", "surrogatepass")

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, self._aad(context))
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode()

    def unseal(self, token: str, context: str) -> bytes:
        """The plaintext; ``ValueError`` for anything this sealer did not issue
        for this context (malformed, tampered, another context or purpose)."""
        if not isinstance(token, str) or not _ALPHABET.match(token):
            raise ValueError("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("not a sealed value") from None
        if len(raw) < 1 + _NONCE + _TAG or raw[:1] != _VERSION:
            raise ValueError("not a sealed value")
        try:
            return self._aead.decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], self._aad(context))
        except InvalidTag:
            raise ValueError("not a sealed value") from None

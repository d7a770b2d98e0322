"""Webhook endpoint secrets at rest (docs/webhooks.md, docs/security.md).

AES-256-GCM under a key derived from key material that is not in the database
(``DOCS_WEBHOOKS_SECRET_KEY``, else the page token secret: a Secrets Manager
secret in AWS), each value bound to its org and endpoint id (the associated
data), so a sealed secret copied to another endpoint or org does not open.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SecretBox:
    """Implements ``SecretBox``: AES-256-GCM under a key derived from ``key_material``
    (a secret that is not in the database), bound to ``context`` (org and endpoint)."""

    PREFIX = "v1."

    def __init__(self, key_material: str) -> None:
        key = hashlib.sha256(b"docs-webhook-secrets/v1\0" + key_material.encode()).digest()
        self._aead = AESGCM(key)

    def seal(self, secret: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return self.PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        raw = base64.b64decode(sealed.removeprefix(self.PREFIX))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise ValueError("the sealed secret does not open under this key") from None

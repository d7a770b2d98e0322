"""Envelope encryption of personal-data fields: AES-256-GCM data keys, wrapped by
a master key from KMS (AWS) or from configuration (local).

Why envelopes: a value is encrypted with a *data key*, and the data key is
stored next to it wrapped by a *master key* whose id (``kid``) is stored too.
So the master key never leaves KMS, one KMS call serves many values (the
active data key is cached per process for at most ``max_uses`` values and
``max_age_s`` seconds), and rotating the master key leaves every stored value
readable: its ``kid`` says which key unwraps it (``python -m chalicelib.cli
pii-reencrypt`` moves old values to the active key, after which the old key
may go).

* ``LocalKeyring``: ``DOCS_PII_LOCAL_KEYS`` = ``kid:base64key,...`` (32-byte
  keys), the first one active.  The local stack sets a dev default; no default
  exists anywhere else.
* ``KmsKeyring``: ``DOCS_PII_KMS_KEY_ID`` (a key ARN or alias);
  ``GenerateDataKey`` / ``Decrypt`` with an encryption context, so a wrapped
  key is useless outside this purpose.

Unwrapped data keys are kept in a small LRU (the AESGCM objects, so the read
path pays one AES-GCM per value and no KMS call after the first).  Every
failure becomes ``KeyUnavailable`` (a 503): a missing or unknown key, a value
that does not authenticate under its context, KMS unreachable.  No message
ever holds a value or key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.aws_client import LazyClient
from chalicelib.domain.errors import KeyUnavailable
from chalicelib.domain.pii import ENVELOPE_MARK, ENVELOPE_VERSION, is_envelope

_NONCE = 12
_KMS_CONTEXT = {"purpose": "docs-pii-data-key"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring(Protocol):
    @property
    def active_kid(self) -> str: ...

    def generate(self) -> tuple[str, bytes, bytes]:
        """(kid, data key, wrapped data key) under the active master key."""

    def unwrap(self, kid: str, wrapped: bytes) -> bytes: ...


def parse_local_keys(spec: str) -> list[tuple[str, bytes]]:
    """``kid:base64key,...`` -> [(kid, 32-byte key)], in order (first = active)."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        try:
            key = base64.b64decode(encoded.strip(), validate=True) if sep else b""
        except (binascii.Error, ValueError):
            key = b""
        if not kid.strip() or len(key) != 32:
            raise ValueError(
                "DOCS_PII_LOCAL_KEYS must be kid:base64key,... with 32-byte keys "
                f"(entry {len(keys) + 1} is not)"
            )
        keys.append((kid.strip(), key))
    if not keys:
        raise ValueError("DOCS_PII_LOCAL_KEYS names no key")
    return keys


class LocalKeyring:
    """Master keys from configuration: data keys are wrapped with AES-GCM."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self._active = keys[0][0]

    @property
    def active_kid(self) -> str:
        return self._active

    def generate(self) -> tuple[str, bytes, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        wrapped = nonce + self._keys[self._active].encrypt(
            nonce, data_key, f"docs-pii-dk:{self._active}".encode()
        )
        return self._active, data_key, wrapped

    def unwrap(self, kid: str, wrapped: bytes) -> bytes:
        master = self._keys.get(kid)
        if master is None:
            raise KeyUnavailable()
        try:
            return master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], f"docs-pii-dk:{kid}".encode())
        except InvalidTag:
            raise KeyUnavailable() from None


class KmsKeyring:
    """Master key in KMS: GenerateDataKey for writes, Decrypt for reads."""

    def __init__(self, key_id: str, region: str, endpoint_url: str | None = None) -> None:
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        # lazy: only deployments with personal-data fields pay for the SDK
        self._kms = LazyClient("kms", region_name=region, endpoint_url=endpoint_url)

    @property
    def kms(self) -> Any:
        return self._kms.get()

    @property
    def active_kid(self) -> str:
        return self.key_id

    def generate(self) -> tuple[str, bytes, bytes]:
        try:
            out = self.kms.generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=_KMS_CONTEXT
            )
        except Exception as exc:
            raise KeyUnavailable() from exc
        # the kid stored is the configured id (ARN or alias); KMS finds the key
        # of a wrapped data key by itself when decrypting
        return self.key_id, bytes(out["Plaintext"]), bytes(out["CiphertextBlob"])

    def unwrap(self, kid: str, wrapped: bytes) -> bytes:
        try:
            out = self.kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=_KMS_CONTEXT)
        except Exception as exc:
            raise KeyUnavailable() from exc
        return bytes(out["Plaintext"])


class EnvelopeCipher:
    """Implements ``FieldCipher`` over a keyring, with a separate blind-index key."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        blind_key: bytes | None,
        max_uses: int = 10_000,
        max_age_s: float = 300.0,
        cache_size: int = 256,
        clock: Any = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self._blind_key = blind_key
        self.max_uses = max_uses
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        # the active data key: (kid, wrapped, AESGCM, uses, born)
        self._active: tuple[str, bytes, AESGCM, int, float] | None = None
        # unwrapped data keys by (kid, wrapped key as stored): a hit decodes nothing
        self._unwrapped: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()
        self._cache_size = cache_size
        self.generated = 0  # data keys generated (KMS GenerateDataKey calls)
        self.unwrapped = 0  # data keys unwrapped (KMS Decrypt calls)

    @property
    def active_kid(self) -> str:
        return self.keyring.active_kid

    def _data_key(self) -> tuple[str, bytes, AESGCM]:
        with self._lock:
            now = self._clock()
            current = self._active
            if (
                current is None
                or current[3] >= self.max_uses
                or now - current[4] >= self.max_age_s
                or current[0] != self.keyring.active_kid
            ):
                kid, data_key, wrapped = self.keyring.generate()
                self.generated += 1
                current = (kid, wrapped, AESGCM(data_key), 0, now)
            kid, wrapped, aead, uses, born = current
            self._active = (kid, wrapped, aead, uses + 1, born)
            return kid, wrapped, aead

    def _opener(self, kid: str, wrapped_b64: str) -> AESGCM:
        key = (kid, wrapped_b64)
        with self._lock:
            aead = self._unwrapped.get(key)
            if aead is not None:
                self._unwrapped.move_to_end(key)
                return aead
        try:
            wrapped = _unb64(wrapped_b64)
        except (binascii.Error, ValueError):
            raise KeyUnavailable() from None
        aead = AESGCM(self.keyring.unwrap(kid, wrapped))
        with self._lock:
            self.unwrapped += 1
            self._unwrapped[key] = aead
            while len(self._unwrapped) > self._cache_size:
                self._unwrapped.popitem(last=False)
        return aead

    def encrypt(self, value: Any, *, context: str, blind: bytes | None) -> dict[str, Any]:
        kid, wrapped, aead = self._data_key()
        nonce = os.urandom(_NONCE)
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        envelope = {
            ENVELOPE_MARK: ENVELOPE_VERSION,
            "kid": kid,
            "wk": _b64(wrapped),
            "iv": _b64(nonce),
            "ct": _b64(aead.encrypt(nonce, plain, context.encode())),
        }
        token = self.blind_index(blind) if blind is not None else None
        if token is not None:
            envelope["bi"] = token
        return envelope

    def decrypt(self, envelope: dict[str, Any], *, context: str) -> Any:
        if not is_envelope(envelope):
            raise KeyUnavailable()
        try:
            nonce, ct = _unb64(envelope["iv"]), _unb64(envelope["ct"])
        except (binascii.Error, ValueError):
            raise KeyUnavailable() from None
        aead = self._opener(str(envelope["kid"]), str(envelope["wk"]))
        try:
            return json.loads(aead.decrypt(nonce, ct, context.encode()))
        except (InvalidTag, ValueError):
            raise KeyUnavailable() from None

    def blind_index(self, blind: bytes) -> str | None:
        if self._blind_key is None:
            return None
        return hmac.new(self._blind_key, blind, hashlib.sha256).hexdigest()[:32]


class MissingCipher:
    """Personal-data fields are declared but no key is configured: every use is a
    503 (a write never stores such a field in clear)."""

    active_kid = ""

    def encrypt(self, value: Any, *, context: str, blind: bytes | None) -> dict[str, Any]:
        raise KeyUnavailable()

    def decrypt(self, envelope: dict[str, Any], *, context: str) -> Any:
        raise KeyUnavailable()

    def blind_index(self, blind: bytes) -> str | None:
        return None


def blind_key_from(raw: str) -> bytes:
    """The blind-index key: base64 of at least 32 bytes, or (a generated secret
    string, as Secrets Manager makes them) the UTF-8 of at least 32 characters."""
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = raw.encode()
    if len(key) < 32:
        raise ValueError("the personal-data blind-index key must hold at least 32 bytes")
    return key


def build_cipher(settings: Any) -> EnvelopeCipher | MissingCipher:
    """The cipher the settings describe: KMS when ``pii_kms_key_id`` is set, else the
    local keys, else ``MissingCipher`` (every use a 503)."""
    keyring: Keyring
    if settings.pii_kms_key_id:
        keyring = KmsKeyring(
            settings.pii_kms_key_id, settings.aws_region, settings.pii_kms_endpoint_url
        )
    elif settings.pii_local_keys:
        keyring = LocalKeyring(parse_local_keys(settings.pii_local_keys))
    else:
        return MissingCipher()
    raw_blind = settings.pii_blind_key
    if settings.pii_blind_key_arn:
        from chalicelib.secrets import get_secret

        raw_blind = get_secret(settings.pii_blind_key_arn)
    return EnvelopeCipher(
        keyring,
        blind_key=blind_key_from(raw_blind) if raw_blind else None,
        max_uses=settings.pii_data_key_max_uses,
        max_age_s=settings.pii_data_key_max_age_s,
    )

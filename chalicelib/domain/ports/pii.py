"""The PII fields' cipher and the store their re-encryption rewrites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class FieldCipher(Protocol):
    """Envelope encryption of single JSON values (personal-data metadata fields;
    the envelope format is domain/pii.py).  Every failure (no key, a wrong key, an
    unreachable KMS) raises ``KeyUnavailable``, naming no value."""

    @property
    def active_kid(self) -> str:
        """The master key new values are encrypted under."""

    def encrypt(self, value: Any, *, context: str, blind: bytes | None) -> dict[str, Any]:
        """An envelope of ``value`` bound to ``context``; with a blind index of
        ``blind`` (domain.pii.blind_input) when given and a blind key is configured."""

    def decrypt(self, envelope: dict[str, Any], *, context: str) -> Any: ...

    def blind_index(self, blind: bytes) -> str | None:
        """The keyed hash a filter looks for (None: no blind key configured)."""


class PiiReencryptionStore(Protocol):
    """Stored metadata of every document and version, for the re-encryption run
    after a key rotation (cross-org ids through a maintenance function, each
    document rewritten under its own org)."""

    def document_ids(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """(org, id) of every document, deleted or not, in (org, id) order."""

    def rewrite_metadata(
        self, org: str, doc_id: str, rewrite: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> int:
        """Apply ``rewrite`` to the metadata of the document and of each of its
        versions (None: leave that one); returns how many rows changed."""

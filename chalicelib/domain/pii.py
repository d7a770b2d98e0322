"""Personal-data (PII) metadata fields: the stored envelope and its rules.  Pure.

Metadata keys named in ``DOCS_PII_FIELDS`` are stored encrypted, one envelope
per value (docs/compliance.md, "Personal data fields (encryption)")::

    {"$enc": "v1", "kid": <master key id>, "wk": <wrapped data key>,
     "iv": <nonce>, "ct": <AES-256-GCM(JSON of the value)>, "bi": <blind index>}

(base64url, no padding).  Envelope encryption: the value is encrypted with a
data key, and the data key is stored wrapped by a master key (KMS in AWS, a
configured key locally) whose id is ``kid``, so a rotation of the master key
needs no rewrite to keep old values readable.  The associated data binds a
ciphertext to its org, document and field (``context``): moved to another
document, org or field it no longer decrypts.  ``bi`` is a keyed hash
(HMAC-SHA256 with a key of its own) of the normalised value, bound to the org
and field: what the search index holds for exact-match filters, never the
value.  It is present for scalar values only.

Clients always send clear values: whatever they put in a personal-data field
(an envelope-shaped object included) is encrypted as a value.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from chalicelib.domain.keys import join_key

ENVELOPE_MARK = "$enc"
ENVELOPE_VERSION = "v1"
# what a rendered document holds iff one of its values is an envelope: the read
# path parses and decrypts only documents that contain it
RENDERED_MARK = f'"{ENVELOPE_MARK}":'
_ENVELOPE_KEYS = frozenset({ENVELOPE_MARK, "kid", "wk", "iv", "ct", "bi"})


def is_envelope(value: Any) -> bool:
    """Whether ``value`` is a stored envelope (as this service writes them)."""
    return (
        isinstance(value, dict)
        and value.get(ENVELOPE_MARK) == ENVELOPE_VERSION
        and set(value) <= _ENVELOPE_KEYS
        and all(isinstance(value.get(k), str) for k in ("kid", "wk", "iv", "ct"))
    )


def field_context(org: str, doc_id: str, field: str) -> str:
    """The associated data of one field's ciphertext: injective in (org, id, field)."""
    return join_key("docs-pii-v1", org, doc_id, field)


def blind_input(org: str, field: str, value: Any) -> bytes | None:
    """What the blind index hashes: the org, the field and the normalised value
    (strings NFC, trimmed, case-folded: an exact match that ignores case);
    None for values that are not scalars (objects and lists are not searchable)."""
    if isinstance(value, str):
        text = unicodedata.normalize("NFC", value).strip().casefold()
    elif isinstance(value, bool | int | float) or value is None:
        text = json.dumps(value)
    else:
        return None
    return join_key("docs-pii-blind-v1", org, field, text).encode()


def blind_tokens(metadata: Any) -> list[str]:
    """The blind-index tokens of a stored metadata object (what the index holds)."""
    if not isinstance(metadata, dict):
        return []
    return sorted(
        str(v["bi"]) for v in metadata.values() if is_envelope(v) and isinstance(v.get("bi"), str)
    )


def needs_sealing(fields: frozenset[str], metadata: dict[str, Any]) -> bool:
    return bool(fields) and any(name in metadata for name in fields)

"""Object keys of uploads: built only from server-side values, parsed strictly."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from chalicelib.domain.model import is_valid_id

KEY_PREFIX = "content/"
# matched with ``fullmatch``: ``$`` would also match before a trailing newline
_UPLOAD_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a ULID (Crockford base32)


@dataclass(frozen=True)
class ContentKey:
    """Where an upload's bytes live: built only from server-side values."""

    org: str
    doc_id: str
    upload_id: str

    @property
    def key(self) -> str:
        # the org comes from a token and may hold any character: quote it
        return f"{KEY_PREFIX}{quote(self.org, safe='')}/{self.doc_id}/{self.upload_id}"


def parse_content_key(key: str) -> ContentKey | None:
    """The parts of a key this service issued; None for any other key.

    ``key`` is the decoded object key (S3 notifications URL-encode it: the
    caller unquotes first).  Strict on purpose: an unexpected key is ignored,
    never guessed at.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    org_q, doc_id, upload_id = parts
    org = unquote(org_q)
    if not org or quote(org, safe="") != org_q:
        return None
    if not is_valid_id(doc_id) or not _UPLOAD_ID.fullmatch(upload_id):
        return None
    return ContentKey(org, doc_id, upload_id)

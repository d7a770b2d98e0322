"""Composite keys that cannot collide.

Orgs and subjects come from tokens and may hold any character, ``:`` and
``/`` included, so joining them with a separator is ambiguous: org ``x:y``
with id ``z`` and org ``x`` with id ``y:z`` would share ``x:y:z``.  Every key
built from more than one caller-influenced part (Redis keys, rate-limit
buckets, OpenSearch ids) goes through ``join_key``, which writes each part as
``<decimal length>:<part>``.  That encoding is prefix-free, so a given number
of parts decodes one way only: two different tuples never map to one key.

Every Redis key starts with ``namespace_prefix``: the configured prefix, then
``@`` and the id of the database the entry was derived from.  The configured
prefix may not hold ``@`` and the id is 32 hex digits, so the first ``@`` of a
key ends the prefix and the id follows: keys of two databases never meet,
whatever either stack's prefix is.
"""

from __future__ import annotations

import re

DATABASE_ID = re.compile(r"[0-9a-f]{32}")


def join_key(*parts: str) -> str:
    """An injective encoding of ``parts``: ``join_key("x:y", "z") == "3:x:y1:z"``."""
    return "".join(f"{len(part)}:{part}" for part in parts)


def split_key(key: str) -> tuple[str, ...]:
    """The parts ``join_key`` joined; ValueError for a string it cannot have made."""
    parts: list[str] = []
    at = 0
    while at < len(key):
        colon = key.index(":", at)
        digits = key[at:colon]
        if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0"):
            raise ValueError(f"not a joined key: {key!r}")
        end = colon + 1 + int(digits)
        if end > len(key):
            raise ValueError(f"not a joined key: {key!r}")
        parts.append(key[colon + 1 : end])
        at = end
    return tuple(parts)


def namespace_prefix(configured: str, database_id: str) -> str:
    """``{configured}@{database_id}:``; ValueError for a prefix holding ``@`` or an
    id that is not 32 lowercase hex digits."""
    if "@" in configured:
        raise ValueError(f"a Redis key prefix may not hold '@': {configured!r}")
    if not DATABASE_ID.fullmatch(database_id):
        raise ValueError(f"not a database id: {database_id!r}")
    return f"{configured}@{database_id}:"

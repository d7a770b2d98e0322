"""Composite keys built from several untrusted components (org, id, ...).

``join_key`` writes each component as ``<decimal length>:<component>`` and
concatenates them.  The encoding is injective: reading it back is
unambiguous whatever characters a component holds (``:`` included), so two
different tuples never share a key (``("x:y", "z")`` and ``("x", "y:z")``
become ``3:x:y1:z`` and ``1:x3:y:z``).  Pure; no I/O.
"""

from __future__ import annotations


def join_key(*parts: str) -> str:
    """``join_key("acme", "doc-1") == "4:acme5:doc-1"``."""
    return "".join(f"{len(part)}:{part}" for part in parts)

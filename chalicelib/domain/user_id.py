"""The one rule for a user id, wherever one enters: a token's ``sub``, a grantee,
an erased user and the ``reassign:<user>`` target, the audit trail's
``?user=`` filter and the search filter ``owner`` (docs/security.md,
"Look-alike user ids").

A user id is what the identity provider puts in ``sub`` (a Cognito sub is a
UUID; a local issuer may use names or e-mail addresses).  It is compared
exactly, so two ids that *look* the same must not both be accepted:

* 1 to 256 characters (code points), text in Unicode NFC form (a decomposed
  spelling is refused rather than normalised: one user, one spelling);
* no whitespace at either end, and inside only single plain spaces (U+0020);
* no control, format (zero-width, bidi), private-use, surrogate or unassigned
  characters, and no other separator (no-break or wide spaces, line breaks);
* none of ``*`` and ``/`` (a wildcard and a path separator: never a name);
* case is kept and compared exactly (``Bob`` and ``bob`` are two users, as
  their issuer says).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from chalicelib.domain.errors import ValidationFailed

MAX_LENGTH = 256
FORBIDDEN = frozenset("*/")


def _bad_character(value: str) -> str | None:
    for ch in value:
        if ch != " " and unicodedata.category(ch)[0] in "CZ":
            return (
                f"must not hold the character U+{ord(ch):04X} (control, format, separator "
                "or unassigned characters; the only space allowed is U+0020)"
            )
        if ch in FORBIDDEN:
            return "must not hold '*' or '/'"
    return None


def user_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a user id, or None when it is one."""
    if not isinstance(value, str):
        return "must be a string"
    checks = (
        (not 1 <= len(value) <= MAX_LENGTH, f"must be 1-{MAX_LENGTH} characters"),
        (value != value.strip(), "must not begin or end with whitespace"),
        ("  " in value, "must not hold two spaces in a row"),
    )
    problem = next((why for failed, why in checks if failed), None) or _bad_character(value)
    if problem is None and unicodedata.normalize("NFC", value) != value:
        problem = "must be in Unicode NFC form"
    return problem


def validate_user_id(value: Any, loc: list[str | int]) -> str:
    """``value`` if it is a user id; a 422 naming ``loc`` otherwise."""
    problem = user_id_problem(value)
    if problem is not None:
        raise ValidationFailed(
            f"Not a user id: a user id {problem} (docs/security.md, 'Look-alike user ids').",
            errors=[{"loc": list(loc), "msg": f"invalid user id: {problem}", "type": "user_id"}],
        )
    assert isinstance(value, str)
    return value

"""Machine clients: OAuth2 client-credentials access tokens, each bound to one org.

A server-to-server client gets an access token from the issuer's token endpoint
(Cognito: an app client with the ``client_credentials`` grant and the resource
server's scopes).  Such a token says who the client is (``client_id``, and
``sub`` equal to it) and what it may do (``scope``: ``docs/read``,
``docs/write``, ``docs/admin``), never which org it acts in: the org comes from
the client's **registration**, a server-side map from client id to org
(``DOCS_MACHINE_CLIENTS``, and locally ``DOCS_MACHINE_CLIENTS_FILE``), which
only the operator writes.  So:

* an access token (``token_use`` ``access``) whose ``client_id`` is not the
  users' app client (``DOCS_JWT_AUDIENCE``) is a machine client's; an
  unregistered client id is a 401;
* an ``org`` claim in a machine client's token that differs from the
  registration is a 401 (a token that claims another org is refused, not
  silently re-homed); headers, bodies and paths never name an org anywhere in
  the API;
* the scopes map to one role, the highest (``domain/principal.py``); a token
  with none of the resource server's scopes is a 403; a ``roles`` claim is not
  read for machine clients;
* the principal's ``sub`` is the client id, so audit rows name the client.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain.errors import Forbidden, Unauthorized
from chalicelib.domain.principal import SCOPE_ROLES, Principal, roles_for_scopes
from chalicelib.domain.user_id import user_id_problem

_MAX_SCOPE = 4096
_MAX_NAME = 256


@dataclass(frozen=True)
class Registration:
    client_id: str
    org: str
    name: str | None = None


def is_machine_token(claims: Mapping[str, Any], settings: Settings) -> bool:
    """An OAuth2 access token of a client other than the users' app client."""
    client_id = claims.get("client_id")
    return (
        claims.get("token_use") == "access"
        and client_id is not None
        and client_id != settings.jwt_audience
    )


@lru_cache(maxsize=8)
def _from_setting(pairs: tuple[str, ...]) -> dict[str, Registration]:
    found: dict[str, Registration] = {}
    for pair in pairs:
        client_id, _, org = pair.partition("=")
        found[client_id.strip()] = Registration(client_id.strip(), org.strip())
    return found


class _RegistrationFile:
    """The registrations of a JSON file, re-read when its mtime changes:
    ``{"clients": {"<client id>": {"org": ..., "name": ...}}}``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[tuple[int, int, int], dict[str, Registration]]] = {}

    def read(self, path: str) -> dict[str, Registration]:
        try:
            stat = os.stat(path)
        except OSError:
            return {}  # no file yet: nobody registered
        version = (stat.st_mtime_ns, stat.st_ino, stat.st_size)  # a rename is a new inode
        with self._lock:
            seen = self._seen.get(path)
            if seen is not None and seen[0] == version:
                return seen[1]
            try:
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
                clients = document["clients"]
                found = {
                    str(cid): Registration(str(cid), str(entry["org"]), entry.get("name"))
                    for cid, entry in clients.items()
                    if isinstance(entry, dict) and entry.get("org")
                }
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                found = {}  # a half-written or broken file registers nobody
            self._seen[path] = (version, found)
            return found


_FILES = _RegistrationFile()


def registration(settings: Settings, client_id: str) -> Registration | None:
    """The client's registration: the setting first, then the file."""
    found = _from_setting(settings.machine_clients).get(client_id)
    if found is None and settings.machine_clients_file:
        found = _FILES.read(settings.machine_clients_file).get(client_id)
    return found


def _scopes(raw: Any) -> list[str]:
    """``scope`` is one space-separated string (RFC 6749 section 3.3; RFC 9068)."""
    if raw is None:
        return []
    if not isinstance(raw, str) or len(raw) > _MAX_SCOPE:
        raise Unauthorized("The token's 'scope' claim must be a space-separated string.")
    return raw.split()


def _client_id(raw: Any) -> str:
    """The client id: it becomes the principal's ``sub``, so it follows the user-id rule."""
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_NAME or not raw.isprintable():
        raise Unauthorized(
            f"The token's 'client_id' claim must be 1-{_MAX_NAME} printable characters."
        )
    problem = user_id_problem(raw)
    if problem is not None:
        raise Unauthorized(f"The token's 'client_id' is not a usable id: an id {problem}.")
    return raw


def _usable_org(org: str) -> bool:
    """The rule a user's ``org`` claim follows (chalicelib/api/auth.py)."""
    return 0 < len(org) <= _MAX_NAME and org.isprintable()


def machine_principal(
    claims: Mapping[str, Any], settings: Settings, request_id: str | None
) -> Principal:
    """The principal of a machine client's verified access token (module docstring)."""
    client_id = _client_id(claims.get("client_id"))
    if claims.get("sub") != client_id:  # a user's access token of another app client
        raise Unauthorized("A client-credentials token's 'sub' must be its 'client_id'.")
    found = registration(settings, client_id)
    if found is None or not _usable_org(found.org):  # a registration that names no usable org
        raise Unauthorized("The token's client (client_id) is not registered with this API.")
    claimed_org = claims.get("org")
    if claimed_org is not None and claimed_org != found.org:
        raise Unauthorized(
            "A machine client's org comes from its registration; this token claims another."
        )
    roles = roles_for_scopes(_scopes(claims.get("scope")), settings.oauth_resource_server)
    if not roles:
        names = ", ".join(f"{settings.oauth_resource_server}/{s}" for s in SCOPE_ROLES)
        raise Forbidden(f"The token carries none of this API's scopes ({names}).")
    return Principal(sub=client_id, org=found.org, roles=roles, request_id=request_id, machine=True)

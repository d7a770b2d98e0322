"""Local machine-client registrations: ``var/machine-clients.json``.

``python -m devtools.cli token --client NAME --org ORG --scopes ...`` records
the client here (a client is bound to one org: registering it again for
another org is refused) and the local server reads the file
(``DOCS_MACHINE_CLIENTS_FILE``, chalicelib/api/machine_clients.py), so the
org of the client's tokens comes from this registration, never from the token.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from devtools import state

DEFAULT_FILE = state.VAR / "machine-clients.json"
ENV = "DOCS_MACHINE_CLIENTS_FILE"


def registrations_file() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_FILE)


def register(client_id: str, org: str, path: Path | None = None) -> bool:
    """Record ``client_id`` for ``org``; False when it is registered already
    (for that org).  Raises ValueError when it is registered for another org."""
    path = path or registrations_file()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = {"clients": {}}
    clients = document.setdefault("clients", {})
    known = clients.get(client_id)
    if known is not None:
        if known.get("org") != org:
            raise ValueError(
                f"client {client_id!r} is registered for org {known.get('org')!r}; a machine "
                f"client is bound to one org (edit or remove it in {path} to move it)"
            )
        return False
    clients[client_id] = {"org": org, "name": client_id}
    path.parent.mkdir(parents=True, exist_ok=True)
    # write then rename: the server never reads a half-written file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".machine-clients-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return True

"""What every command of the local CLI shares: where the checkout keeps its state,
the dev signing secret, one-sentence errors, and pointing a process at the running
local stack."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

from devtools import state

ROOT = state.ROOT
VAR = state.VAR
DEV_SECRET_FILE = VAR / "dev-jwt-secret"


class CliError(Exception):
    """Said in one sentence on stderr; exit status 2."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dev_secret(create: bool) -> str | None:
    """DOCS_JWT_SECRET, else the local dev secret file (created by ``serve``)."""
    if os.environ.get("DOCS_JWT_SECRET"):
        return os.environ["DOCS_JWT_SECRET"]
    if DEV_SECRET_FILE.exists():
        return DEV_SECRET_FILE.read_text().strip()
    if not create:
        return None
    VAR.mkdir(exist_ok=True)
    DEV_SECRET_FILE.write_text(secrets.token_urlsafe(48))
    DEV_SECRET_FILE.chmod(0o600)
    return DEV_SECRET_FILE.read_text().strip()


def use_local_stack(*, search: bool = False) -> state.LocalState | None:
    """Point this process at the running local server's services (those not set in
    the environment), else at the local stack's defaults; check the URLs."""
    from devtools import services

    running = state.read()
    if running is not None and state.adopt(running):
        say(f"using the local server at {running.url} (pid {running.pid}; {state.state_file()})")
    else:
        running = None
        os.environ.setdefault("DATABASE_URL", services.DEFAULT_DATABASE_URL)
        os.environ.setdefault("DOCS_REDIS_KEY_PREFIX", services.LOCAL_REDIS_PREFIX)
    for name in ("DATABASE_URL", "REDIS_URL", "OPENSEARCH_URL"):
        if os.environ.get(name):
            services.check_url(name, os.environ[name])
    local_pii_defaults()
    if search and not os.environ.get("OPENSEARCH_URL"):
        raise CliError(
            "OPENSEARCH_URL is not set and no local server is running: start one "
            "(./scripts/serve.sh --detach), or set OPENSEARCH_URL to your OpenSearch"
        )
    return running


def local_pii_defaults(env: Any = os.environ) -> None:
    """The local stack's dev keys for personal-data fields (docs/compliance.md): a
    fixed, public key, so values written by one local run open in the next.  Only
    here: no other place has a default, and AWS uses KMS."""
    import base64
    import hashlib

    def dev_key(label: str) -> str:
        digest = hashlib.sha256(f"docs-local-dev:{label}".encode()).digest()
        return base64.b64encode(digest).decode()

    env.setdefault("DOCS_PII_LOCAL_KEYS", f"dev1:{dev_key('pii-master-1')}")
    env.setdefault("DOCS_PII_BLIND_KEY", dev_key("pii-blind-1"))

"""A machine client on the local server, as a developer meets it: ``devtools.cli
token --client NAME --org ORG --scopes ...`` registers the client and prints a
client-credentials token; the running server reads the registration at once
and takes the org from it (docs/security.md, "Machine clients")."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.api.auth import mint_machine_token
from chalicelib.config import Settings
from tests.conftest import JWT_SECRET, REDIS_URL, make_token
from tests.e2e.conftest import Client, LocalServer, server_env
from tests.e2e.test_local_cli import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def registrations(tmp_path: Path) -> Path:
    return tmp_path / "machine-clients.json"


@pytest.fixture
def local(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str], registrations: Path
) -> Iterator[str]:
    env = server_env(database_url, REDIS_URL, redis_prefix, **local_search_env,
                     DOCS_MACHINE_CLIENTS_FILE=str(registrations))  # fmt: skip
    running = LocalServer(env)
    yield running.base
    running.stop()


def test_the_cli_registers_a_client_the_running_server_then_accepts(
    local: str, registrations: Path
) -> None:
    org, other = f"m-{uuid.uuid4().hex[:8]}", f"m-{uuid.uuid4().hex[:8]}"
    client_id = f"bot-{uuid.uuid4().hex[:6]}"
    early = mint_machine_token(Settings(jwt_secret=JWT_SECRET), client_id=client_id,
                               scopes=["docs/write"])  # fmt: skip
    assert Client(local, early).request("GET", "/documents").status == 401  # not registered

    env = {**os.environ, "DOCS_JWT_SECRET": JWT_SECRET,
           "DOCS_MACHINE_CLIENTS_FILE": str(registrations)}  # fmt: skip
    args = ("token", "--client", client_id, "--org", org, "--scopes", "docs/read docs/write")
    made = run_cli(*args, env=env)
    assert made.returncode == 0, made.stderr
    assert "registered machine client" in made.stderr
    bot = Client(local, made.stdout.strip())
    r = bot.request("POST", "/documents", {"title": "from the bot"}, headers={"X-Org": other})
    assert r.status == 201, r
    doc_id = r.json()["id"]
    assert Client(local, early).request("GET", f"/documents/{doc_id}").status == 200

    admin = Client(local, make_token(org=org, sub="ada", roles=("admin",)))
    audit = admin.request("GET", f"/audit?document={doc_id}").json()["items"]
    assert [row["actor"] for row in audit] == [client_id]
    stranger = Client(local, make_token(org=other, sub="ada", roles=("admin",)))
    assert stranger.request("GET", f"/documents/{doc_id}").status == 404

    # the client stays in its org: the CLI refuses to move it, the server keeps it there
    moved = run_cli("token", "--client", client_id, "--org", other, env=env)
    assert moved.returncode == 2 and f"registered for org '{org}'" in moved.stderr
    assert json.loads(registrations.read_text())["clients"][client_id]["org"] == org

"""The first hour on a machine that others share, as a new user meets it: two clones
on one PostgreSQL and Redis side by side with no setting, two background servers of
one clone, and each stopped on its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.services import ensure_database, free_port
from tests.conftest import JWT_SECRET, REDIS_URL, delete_prefix, drop_database, make_token
from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# what a new user's shell does not set: the clones must find their own stack
STACK_VARS = ("DATABASE_URL", "REDIS_URL", "OPENSEARCH_URL", "DOCS_SEARCH_ALIAS",
              "DOCS_REDIS_KEY_PREFIX", "DOCS_AWS_ENDPOINT_URL", "DOCS_DB_RUNTIME_URL",
              "DOCS_LOCAL_STATE_FILE")  # fmt: skip
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "var", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", ".schemathesis", "node_modules",
)  # fmt: skip


class Clone:
    """A copy of this checkout at ``path`` (what a second ``git clone`` holds)."""

    def __init__(self, path: Path) -> None:
        shutil.copytree(ROOT, path, ignore=_SKIP, symlinks=True)
        self.path = path
        self.env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
        self.env["DOCS_JWT_SECRET"] = JWT_SECRET  # so one token works on every server
        self.env["DOCS_WORKERS"] = "2"  # PostgreSQL connections are shared by every xdist worker
        self.ports: list[int] = []  # the servers started, whose stacks the test removes

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devtools.cli", *args], cwd=self.path,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip

    def names(self, port: int) -> tuple[str, str]:
        """This clone's database and key prefix for ``port``, as the clone computes them."""
        code = (
            "from devtools import services as s; "
            f"print(s.local_database({port})); print(s.local_redis_prefix({port}))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=self.path, env=self.env,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        return out[0], out[1]


@pytest.fixture
def clones(tmp_path: Path) -> Iterator[list[Clone]]:
    made = [Clone(tmp_path / "first"), Clone(tmp_path / "second")]
    yield made
    for clone in made:
        clone.cli("stop", "--all")
    client = redis.Redis.from_url(REDIS_URL)
    for clone in made:
        for port in clone.ports:
            database, prefix = clone.names(port)
            drop_database(ensure_database(SERVER_URL, database), base=SERVER_URL)
            delete_prefix(client, prefix)


def start(clone: Clone, port: int) -> Client:
    clone.ports.append(port)
    result = clone.cli("serve", "--detach", "--port", str(port))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"serving http://127.0.0.1:{port}" in result.stdout
    return Client(f"http://127.0.0.1:{port}", make_token(org="acme", sub="alice"))


def test_two_clones_on_one_postgres_and_redis_keep_their_documents_apart(
    clones: list[Clone],
) -> None:
    first, second = clones
    assert first.names(8000) != second.names(8000)
    a = start(first, free_port())
    b = start(second, free_port())  # not refused: its outbox is its own
    created = a.request("POST", "/documents", {"title": "only in the first clone"})
    assert created.status == 201
    doc = created.json()["id"]

    assert b.request("GET", f"/documents/{doc}").status == 404
    listed = b.request("GET", "/documents?limit=100").json()
    assert doc not in {d["id"] for d in listed["items"]}
    assert a.request("GET", f"/documents/{doc}").status == 200


def test_two_background_servers_of_one_clone_each_start_and_stop_on_their_own(
    clones: list[Clone],
) -> None:
    clone = clones[0]
    one, two = free_port(), free_port()
    a = start(clone, one)
    b = start(clone, two)  # its own state file and database: it waits for its own /health
    assert clone.names(one) != clone.names(two)
    assert (clone.path / "var" / f"local-stack-{one}.json").exists()
    assert (clone.path / "var" / f"local-stack-{two}.json").exists()

    stopped = clone.cli("stop", "--port", str(one))
    assert stopped.returncode == 0 and f":{one}" in stopped.stdout, stopped
    with pytest.raises(urllib.error.URLError):
        a.request("GET", "/health")
    assert b.request("GET", "/health").status == 200

    again = clone.cli("serve", "--detach", "--port", str(two))
    assert again.returncode == 0 and "already serving" in again.stdout, again

    everything = clone.cli("stop", "--all")
    assert everything.returncode == 0 and f":{two}" in everything.stdout, everything
    with pytest.raises(urllib.error.URLError):
        b.request("GET", "/health")


@pytest.mark.parametrize("to", ["the parent", "its process group"])
def test_sigint_stops_every_process_without_a_traceback(
    to: str, database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> None:
    """SIGINT to the parent alone (a process manager, an IDE's stop button) or to the
    whole group (Ctrl-C in a terminal, ``timeout -s INT``): one clean stop."""
    import signal

    from tests.e2e.conftest import server_env

    port = free_port()
    env = {**os.environ, **server_env(database_url, REDIS_URL, redis_prefix, **local_search_env)}
    log = ROOT / "var" / f"e2e-sigint-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.cli", "serve", "--port", str(port)],
            cwd=ROOT, env={**env, "DOCS_LOCAL_STATE_FILE": str(log.with_suffix(".json"))},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            client = Client(f"http://127.0.0.1:{port}")

            def health() -> int:
                try:
                    return client.request("GET", "/health").status
                except OSError:
                    return 0

            from tests.polling import poll

            assert poll(health, lambda s: s == 200 or proc.poll() is not None, timeout_s=60) == 200
            if to == "the parent":
                proc.send_signal(signal.SIGINT)
            else:
                os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    said = log.read_text()
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said[-3000:]

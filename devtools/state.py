"""Where a running local server can be found: ``var/local-stack.json`` (port 8000),
``var/local-stack-<port>.json`` (any other port).

``serve`` writes its port's file once it is serving (its pid, URL, log file and the service
URLs it chose, embedded ones included) and removes it when it exits cleanly.
The other CLI commands read it, so they reach the running stack without
hand-copied ``DATABASE_URL`` / ``OPENSEARCH_URL``: port 8000's server when it
runs, else the first other one that does.  A file whose process is gone (a
crash, ``kill -9``) is ignored.  ``DOCS_LOCAL_STATE_FILE`` puts it elsewhere
(the e2e tests give each of their servers its own).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DEFAULT_FILE = VAR / "local-stack.json"
# what a server hands to the CLI: the variables its own processes run with
SHARED_ENV = (
    "DATABASE_URL",
    "DOCS_DB_RUNTIME_URL",
    "REDIS_URL",
    "DOCS_REDIS_KEY_PREFIX",
    "OPENSEARCH_URL",
    "DOCS_SEARCH_ALIAS",
    "DOCS_AWS_ENDPOINT_URL",
    "DOCS_CONTENT_BUCKET",
)


@dataclass
class LocalState:
    pid: int
    url: str
    log: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)


DEFAULT_PORT = 8000


def state_file(port: int | None = None) -> Path:
    """The state file of the server on ``port`` (DOCS_LOCAL_STATE_FILE wins)."""
    if os.environ.get("DOCS_LOCAL_STATE_FILE"):
        return Path(os.environ["DOCS_LOCAL_STATE_FILE"])
    if port is None or port == DEFAULT_PORT:
        return DEFAULT_FILE
    return VAR / f"local-stack-{port}.json"


def running_servers() -> list[tuple[Path, LocalState]]:
    """Every live local server of this checkout with its state file, port 8000's first."""
    if os.environ.get("DOCS_LOCAL_STATE_FILE"):
        paths = [state_file()]
    else:
        paths = [DEFAULT_FILE, *sorted(VAR.glob("local-stack-*.json"))]
    found = [(path, read(path)) for path in paths]
    return [(path, live) for path, live in found if live is not None]


def pid_alive(pid: int) -> bool:
    """The process exists and is a local server (not a recycled pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's: alive, but then not ours to trust
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        command = cmdline.read_bytes()
        return b"devtools.cli" in command or b"chalicelib.cli" in command
    return True  # no /proc (macOS): the pid alone


def read(path: Path | None = None) -> LocalState | None:
    """The running server's state (at ``path``, else the first of ``running_servers``);
    None when there is none, or its process is gone."""
    if path is None:
        servers = running_servers()
        return servers[0][1] if servers else None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        state = LocalState(
            pid=int(data["pid"]),
            url=str(data["url"]),
            log=data.get("log"),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if state.running else None


def write(state: LocalState, path: Path | None = None) -> Path:
    """Atomically (readers never see half a file), readable by the owner only: it
    holds service URLs, possibly with passwords."""
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(state), f, indent=2)
    os.replace(tmp, path)
    return path


def remove(pid: int, path: Path | None = None) -> None:
    """Remove the file if it is ``pid``'s (another server may have taken it over)."""
    path = path or state_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if data.get("pid") == pid:
        with contextlib.suppress(OSError):
            path.unlink()


def adopt(state: LocalState, env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Fill ``env`` with the running server's variables (the ones not set), unless
    DATABASE_URL points elsewhere: then it is another stack, and nothing is taken."""
    own = env.get("DATABASE_URL")
    if own and own != state.env.get("DATABASE_URL"):
        return False
    for name, value in state.env.items():
        if name in SHARED_ENV and not env.get(name):
            env[name] = value
    return True

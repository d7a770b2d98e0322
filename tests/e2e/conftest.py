"""Start the local server (``python -m devtools.cli serve``) on a free port, black-box."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.services import free_port
from tests.conftest import JWT_SECRET, request_parts
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> HttpResponse:
        hdrs, data = request_parts(self.token, body, headers, raw)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return HttpResponse(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
                )
        except urllib.error.HTTPError as err:
            return HttpResponse(
                err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()
            )


class LocalServer:
    """``python -m devtools.cli serve`` on a free port, with extra environment and its
    own state file (``state_file``; the CLI finds it with ``DOCS_LOCAL_STATE_FILE``)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        (ROOT / "var").mkdir(exist_ok=True)
        self.log_path = ROOT / "var" / f"e2e-server-{self.port}.log"
        self.state_file = ROOT / "var" / f"e2e-state-{self.port}.json"
        self.env = {**os.environ, "DOCS_LOCAL_STATE_FILE": str(self.state_file), **env}
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def answering() -> bool:
            try:
                return Client(self.base).request("GET", "/health").status == 200
            except OSError:
                return False

        def up_or_gone(up: bool) -> bool:
            return up or self.proc.poll() is not None

        if not poll(answering, up_or_gone, timeout_s=60, interval_s=0.2):
            self.stop()
            raise RuntimeError(f"local server did not start; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def server_env(
    database_url: str, redis_url: str, redis_prefix: str, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DOCS_REDIS_KEY_PREFIX": redis_prefix,
        "DOCS_JWT_SECRET": JWT_SECRET,
        "DOCS_WORKERS": "2",  # PostgreSQL connections are shared by every xdist worker
        # load tests would trip the per-principal limits (their own tests cover them)
        "DOCS_RATE_LIMIT_READER": "[100000, 100000]",
        "DOCS_RATE_LIMIT_WRITER": "[100000, 100000]",
        **extra,
    }

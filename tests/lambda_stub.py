"""A local endpoint speaking Lambda's Invoke API, for tests of code that invokes functions.

boto3 reaches it through ``AWS_ENDPOINT_URL_LAMBDA``.  Each function it knows is a
Python callable of the payload; it models the two behaviours of the real service
that matter to a caller waiting on a long invocation:

* the invocation runs to its end whether or not the caller is still waiting (a
  client that gave up after its read timeout does not stop it);
* a function with reserved concurrency 1 that is already running answers a second
  synchronous invocation with 429 ``TooManyRequestsException`` (Lambda queues
  only asynchronous invocations).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

Behaviour = Callable[[dict[str, Any]], Any]
PREFIX = "/2015-03-31/functions/"


@dataclass
class StubFunction:
    """One function: what it answers, and what the stub saw of it."""

    run: Behaviour
    reserved_concurrency: int | None = None
    running: int = 0
    started: int = 0
    finished: int = 0
    throttled: int = 0
    results: list[Any] = field(default_factory=list)


class LambdaStub:
    """The functions by name (the full ARN, or its last parts, as boto3 sends it)."""

    def __init__(self) -> None:
        self.functions: dict[str, StubFunction] = {}
        self.lock = threading.Lock()
        self.url = ""

    def add(
        self, name: str, run: Behaviour, *, reserved_concurrency: int | None = None
    ) -> StubFunction:
        function = StubFunction(run, reserved_concurrency)
        self.functions[name] = function
        return function

    def invoke(self, name: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        function = self.functions.get(name)
        if function is None:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        with self.lock:
            limit = function.reserved_concurrency
            if limit is not None and function.running >= limit:
                function.throttled += 1
                return _error(429, "TooManyRequestsException", "Rate Exceeded.")
            function.running += 1
            function.started += 1
        try:
            result = function.run(payload)
            headers = {"X-Amz-Executed-Version": "1"}
        except Exception as exc:  # the function's own error: 200 with X-Amz-Function-Error
            result = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            headers = {"X-Amz-Executed-Version": "1", "X-Amz-Function-Error": "Unhandled"}
        finally:
            with self.lock:
                function.running -= 1
                function.finished += 1
        function.results.append(result)
        return 200, headers, json.dumps(result).encode()


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return status, {"x-amzn-ErrorType": kind}, body


def _handler(stub: LambdaStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if not (path.startswith(PREFIX) and path.endswith("/invocations")):
                status, headers, body = _error(400, "InvalidRequestContentException", path)
            else:
                name = unquote(path[len(PREFIX) : -len("/invocations")])
                status, headers, body = stub.invoke(name, json.loads(raw or b"{}"))
            try:
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller stopped waiting; the invocation ran anyway

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def serve() -> Iterator[LambdaStub]:
    """A LambdaStub listening on 127.0.0.1 (a free port) until the block ends."""
    stub = LambdaStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()

"""``serve`` and ``stop``: the local stack in the foreground or in the background,
its processes (HTTP workers, search sync, exports, real-time), its state file per
port, and stopping one server or all of them."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from devtools import state
from devtools.cli_support import (
    ROOT,
    VAR,
    CliError,
    dev_secret,
    local_pii_defaults,
    say,
)
from devtools.logline import log_line

DETACH_LOG = VAR / "serve.log"
DETACH_WAIT_S = 600.0  # a fresh clone starts embedded services the first time


def _raise_on_sigterm() -> None:
    """Until the server loop takes over SIGTERM: unwind, so what started is stopped."""

    def terminate(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)


LOCAL_SENDER = "notifications@docs.local"  # verified in the local moto SES at start


def cmd_serve(args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(args)
    from devtools import server, services

    _raise_on_sigterm()
    sock = server.listen(args.host, args.port)  # first: a taken port stops us at once
    stack: services.LocalStack | None = None
    try:
        stack = services.resolve(embedded=args.embedded, data_dir=VAR / "embedded", port=args.port)
        for note in stack.notes:
            log_line("local stack", service=note)
        _configure(stack, args.port)
        _migrate(stack)
        if stack.opensearch_url:
            _check_consumers()
        if stack.s3_endpoint:  # bucket + ObjectCreated → SQS → process_upload poller
            from chalicelib.config import Settings
            from devtools import s3_stack

            bucket = Settings().content_bucket
            stop_poller = s3_stack.start(stack.s3_endpoint, bucket, inherited=(sock,))
            if Settings().notify_sender:  # share e-mails go to moto's SES (docs/local.md)
                s3_stack.verify_sender(stack.s3_endpoint, Settings().notify_sender)
            stack._stoppers.append(stop_poller)
        if stack.opensearch_url:
            stack._stoppers.append(_start_sync_process(sock))
        if stack.s3_endpoint:  # POST /me/export jobs (functions/export_worker.py in AWS)
            stack._stoppers.append(_start_export_process(sock))
        stack._stoppers.append(_start_realtime_process(sock))
        stack._stoppers.append(_start_webhook_process(sock))
        url = f"http://{args.host}:{args.port}"
        server.serve(
            args.host, args.port, args.workers, sock=sock, on_ready=lambda: _publish(url, args.port)
        )
    finally:
        sock.close()
        if stack is not None:
            stack.stop()
        state.remove(os.getpid())
    return 0


def _configure(stack: Any, port: int) -> None:
    """The environment every process of the server (and the CLI, via the state file)
    runs with."""
    from devtools import services

    os.environ["DATABASE_URL"] = stack.database_url
    os.environ["REDIS_URL"] = stack.redis_url
    os.environ.setdefault("DOCS_REDIS_KEY_PREFIX", services.local_redis_prefix(port))
    os.environ["DOCS_JWT_SECRET"] = dev_secret(create=True) or ""
    # machine clients registered by 'token --client' (devtools/machine_clients.py)
    os.environ.setdefault("DOCS_MACHINE_CLIENTS_FILE", str(VAR / "machine-clients.json"))
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    local_pii_defaults()
    # webhooks to http:// and loopback receivers (docs/webhooks.md); never in AWS
    os.environ.setdefault("DOCS_WEBHOOKS_INSECURE_LOCAL", "true")
    if stack.opensearch_url:
        os.environ["OPENSEARCH_URL"] = stack.opensearch_url
        os.environ.setdefault("DOCS_SEARCH_NUDGE", "notify")  # wakes the sync loop
    if stack.s3_endpoint:
        os.environ["DOCS_AWS_ENDPOINT_URL"] = stack.s3_endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("DOCS_NOTIFY_SENDER", LOCAL_SENDER)


def _migrate(stack: Any) -> None:
    """Migrations run as DATABASE_URL's login (the owner); the API, the sync and the
    CLI's other commands connect as the runtime login."""
    from chalicelib.adapters.postgres import migrate
    from chalicelib.config import Settings
    from devtools import services

    runtime = Settings()
    applied = migrate(stack.database_url, runtime_user=runtime.runtime_user)
    log_line("migrated", applied=applied)
    reason = services.postgres_reachable(runtime.runtime_database_url)
    if reason:
        raise services.ServiceUnavailable(
            f"the runtime login {runtime.runtime_user!r} cannot connect ({reason}); "
            "set DOCS_DB_RUNTIME_URL (docs/database-roles.md)"
        )


def _check_consumers() -> None:
    """Before serving: refuse when another consumer of this outbox writes elsewhere."""
    from chalicelib import bootstrap
    from devtools import sync_worker

    container = bootstrap.build()  # closed again: the forked workers build their own
    try:
        sync_worker.check(container)
    finally:
        container.close()


def _publish(url: str, port: int) -> None:
    """Write this port's state file, unless a live server of this checkout owns it."""
    path = state.state_file(port)
    other = state.read(path)
    if other is not None and other.pid != os.getpid():
        log_line(
            "local stack",
            note=f"another local server (pid {other.pid}, {other.url}) owns "
            f"{path}: the CLI keeps finding that one",
        )
        return
    env = {name: os.environ[name] for name in state.SHARED_ENV if os.environ.get(name)}
    log = os.environ.get("DOCS_LOCAL_LOG_FILE")
    path = state.write(state.LocalState(pid=os.getpid(), url=url, log=log, env=env), path)
    log_line("local stack", state_file=str(path))


def _start_process(sock: Any, name: str, target: Any) -> Any:
    """``target`` in a forked process of its own (like its own Lambda function); the
    stopper the stack calls on its way out.  The child leaves the HTTP workers' socket
    to them and ignores SIGINT: a Ctrl-C (or a SIGINT sent to the parent alone) is
    the parent's to act on, and the parent stops its children with SIGTERM."""
    import multiprocessing

    def run() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sock.close()  # not ours to hold the port with
        target()

    proc = multiprocessing.get_context("fork").Process(target=run, daemon=True, name=name)
    proc.start()

    def stop() -> None:
        proc.terminate()
        proc.join(timeout=10)

    return stop


def _start_sync_process(sock: Any) -> Any:
    """The search sync loop (functions/sync_search.py in AWS)."""
    from devtools import sync_worker

    return _start_process(sock, "sync", sync_worker.main)


def _start_webhook_process(sock: Any) -> Any:
    """The webhook deliverer loop (functions/deliver_webhooks.py in AWS); supervised:
    killed, it is started again and goes on from its cursor and its deliveries."""
    from devtools import webhook_worker
    from devtools.supervise import supervise

    return _start_process(sock, "webhooks", lambda: supervise(webhook_worker.main, "webhooks"))


def _start_export_process(sock: Any) -> Any:
    """The personal-data export loop (functions/export_worker.py in AWS)."""
    from devtools import export_worker

    return _start_process(sock, "exports", export_worker.main)


def _start_realtime_process(sock: Any) -> Any:
    """The real-time process (WebSocket, server-sent events, the fan-out): the workers
    hand those connections over to it (devtools/realtime_hub.py).  Supervised: if it
    dies it is started again on the same socket (devtools/supervise.py), and clients
    resume from their last seq.  Off with DOCS_REALTIME_ENABLED=false (the routes
    then answer as in AWS)."""
    import tempfile

    from chalicelib.config import Settings
    from devtools import realtime_http, realtime_hub
    from devtools.supervise import supervise

    if not Settings().realtime_enabled:
        return lambda: None
    path = os.path.join(tempfile.gettempdir(), f"docs-realtime-{os.getpid()}.sock")
    stop = _start_process(
        sock, "realtime", lambda: supervise(lambda: realtime_hub.main(path), "realtime")
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ[realtime_http.ENV_SOCKET] = path  # the workers, forked next, hand over to it
    return stop


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 - ours
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


def _detach(args: argparse.Namespace) -> int:
    """Start ``serve`` in the background; return once /health answers (or it failed)."""
    url = f"http://{args.host}:{args.port}"
    own_state = state.state_file(args.port)
    running = state.read(own_state)
    if running is not None and running.url == url and _health(url):
        print(f"already serving {url} (pid {running.pid}); stop it with ./scripts/serve.sh --stop")
        return 0
    VAR.mkdir(exist_ok=True)
    log_path = DETACH_LOG if args.port == 8000 else VAR / f"serve-{args.port}.log"
    argv = [sys.executable, "-m", "devtools.cli", "serve", "--host", args.host,
            "--port", str(args.port), "--workers", str(args.workers)]  # fmt: skip
    if args.embedded:
        argv.append("--embedded")
    with open(log_path, "wb") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            argv, cwd=ROOT, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DOCS_LOCAL_LOG_FILE": str(log_path)},
            start_new_session=True,  # not stopped by the terminal's Ctrl-C or hangup
        )  # fmt: skip
    rel_log = os.path.relpath(log_path)
    say(f"starting the local server (pid {proc.pid}); log: {rel_log}")
    deadline = time.monotonic() + DETACH_WAIT_S
    while True:
        if proc.poll() is not None:
            lines = log_path.read_text(errors="replace").splitlines()
            said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
            if said:  # it said why in one sentence
                raise CliError(said[-1])
            raise CliError(
                f"the server did not start; see {rel_log}:\n  " + "\n  ".join(lines[-15:])
            )
        mine = state.read(own_state)
        if mine is not None and mine.pid == proc.pid and _health(url):
            break
        if time.monotonic() > deadline:
            proc.terminate()
            raise CliError(f"the server did not answer within {DETACH_WAIT_S:.0f} s; see {rel_log}")
        time.sleep(0.3)
    print(f"serving {url} (pid {proc.pid}); log: {rel_log}; stop: ./scripts/serve.sh --stop")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if args.all:
        targets = [live for _, live in state.running_servers()]
    else:
        path = state.state_file(args.port) if args.port is not None else None
        live = state.read(path)
        targets = [live] if live is not None else []
    if not targets:
        where = os.path.relpath(state.state_file(args.port))
        say(f"no local server is running ({where})")
        return 0
    for running in targets:
        _stop_one(running, args.timeout)
    return 0


def _stop_one(running: state.LocalState, timeout: float) -> None:
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while state.pid_alive(running.pid):
        if time.monotonic() > deadline:
            say(f"the server (pid {running.pid}) did not stop within {timeout} s; killing it")
            _kill_group(running.pid)
            break
        time.sleep(0.2)
    print(f"stopped the local server at {running.url} (pid {running.pid})")


def _kill_group(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid:  # started by --detach: its own process group
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

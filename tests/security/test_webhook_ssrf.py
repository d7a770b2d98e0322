"""Webhooks as an SSRF vector (docs/webhooks.md, "Where deliveries may go"):
attacks on the sender, with a stub resolver (no real DNS) and local sockets.

Each test makes the sender do what an attacker registering an endpoint would
want (reach loopback, a private network, instance metadata, rebind DNS,
redirect, hang, flood) and checks that nothing is sent there.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.webhook_http import HttpSender
from chalicelib.config import Settings
from chalicelib.domain.webhook_urls import UnsafeTarget, check_url
from tests.webhook_receiver import receiver

BODY = b'{"type":"document.created"}'


def stub(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(f"{host}: no such name")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",  # plain http
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://localhost/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",  # instance metadata
        "https://[fd00:ec2::254]/",  # instance metadata over IPv6
        "https://100.64.0.1/",  # shared address space
        "https://224.0.0.1/",  # multicast
        "https://0.0.0.0/",
        "https://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "https://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "https://metadata.google.internal/",
        "https://user:pw@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://intranet/",  # not fully qualified
        "https://hooks.example.com:0/",
        "https://hooks.example.com/\r\nX-Injected: 1",
    ],
)
def test_registration_refuses(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url)


def test_insecure_local_allows_loopback_and_http_but_still_no_private_network() -> None:
    assert check_url("http://127.0.0.1:8080/x", insecure_local=True).port == 8080
    assert check_url("http://localhost/x", insecure_local=True).host == "localhost"
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://192.168.0.1/"):
        with pytest.raises(UnsafeTarget):
            check_url(url, insecure_local=True)


def test_insecure_local_is_ignored_in_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_WEBHOOKS_INSECURE_LOCAL", "true")
    assert Settings().webhooks.insecure_local is True
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "docs-webhooks")
    assert Settings().webhooks.insecure_local is False


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["93.184.215.14", "10.0.0.5"],  # one public, one private: refused as a whole
        ["::ffff:127.0.0.1"],
    ],
)
def test_a_name_resolving_to_an_internal_address_gets_nothing(answer: list[str]) -> None:
    with receiver() as rx:
        sender = HttpSender(resolver=stub({"hooks.example.com": answer}))
        outcome = sender.send("https://hooks.example.com/x", {}, BODY)
        assert outcome.status_code is None and outcome.error is not None
        assert outcome.error.startswith("refused:")
        assert rx.requests == []


def test_the_address_is_resolved_once_and_pinned() -> None:
    """DNS rebinding: a resolver that answers a public address first and loopback
    afterwards.  The sender resolves once, checks, and connects to what it checked
    (here a local receiver stands in for the public address, with loopback allowed)."""
    with receiver() as rx:
        port = int(rx.url.rsplit(":", 1)[1].split("/")[0])
        calls: list[str] = []
        answers = iter([["127.0.0.1"], ["10.9.9.9"]])

        def rebinding(host: str, p: int) -> list[str]:
            calls.append(host)
            return next(answers)

        sender = HttpSender(insecure_local=True, resolver=rebinding)
        outcome = sender.send(f"http://rebind.localhost:{port}/hook", {}, BODY)
        assert outcome.ok, outcome
        assert calls == ["rebind.localhost"]  # one lookup
        assert rx.requests[0].headers["host"] == f"rebind.localhost:{port}"  # the name as Host


def test_https_connects_to_the_pinned_address_with_the_name_as_sni(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TLS connection goes to the checked address (not a second lookup) and sends the
    URL's name as SNI, so the certificate is verified for that name."""
    seen: dict[str, Any] = {}

    def fake_connect(address: tuple[str, int], timeout: float) -> socket.socket:
        seen["address"] = address
        raise ConnectionRefusedError("stop here")

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    sender = HttpSender(resolver=stub({"hooks.example.com": ["93.184.215.14"]}))
    outcome = sender.send("https://hooks.example.com:8443/x", {}, BODY)
    assert seen["address"] == ("93.184.215.14", 8443)
    assert outcome.error is not None and "ConnectionRefusedError" in outcome.error
    ctx = ssl.create_default_context()
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED


def test_a_redirect_is_not_followed() -> None:
    with receiver() as rx:
        rx.statuses = [302]  # Location: the metadata service
        outcome = HttpSender(insecure_local=True).send(rx.url, {}, BODY)
        assert outcome.status_code == 302 and not outcome.ok
        assert "redirects are not followed" in (outcome.error or "")
        assert len(rx.requests) == 1


def test_a_name_that_does_not_resolve_or_hangs_fails_fast() -> None:
    def hang(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["93.184.215.14"]

    started = time.monotonic()
    outcome = HttpSender(resolver=hang, resolve_timeout_s=0.2).send(
        "https://slow.example/", {}, BODY
    )
    assert outcome.error is not None and "timed out" in outcome.error
    assert time.monotonic() - started < 4  # bounded by the timeout, not the resolver
    outcome = HttpSender(resolver=stub({})).send("https://nx.example/", {}, BODY)
    assert outcome.error is not None and "does not resolve" in outcome.error


@pytest.fixture
def tarpit() -> Iterator[tuple[int, threading.Event]]:
    """A server that accepts, then answers with an endless body (or nothing at all)."""
    stop = threading.Event()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]
    sent = {"bytes": 0}

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            chunk = b"x" * 65536
            try:
                while not stop.is_set() and sent["bytes"] < 50_000_000:
                    conn.sendall(chunk)
                    sent["bytes"] += len(chunk)
            except OSError:
                pass
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, stop
    stop.set()
    sock.close()


def test_the_response_read_is_bounded(tarpit: tuple[int, threading.Event]) -> None:
    port, _ = tarpit
    sender = HttpSender(insecure_local=True, read_timeout_s=2.0)
    started = time.monotonic()
    outcome = sender.send(f"http://127.0.0.1:{port}/", {}, BODY)
    assert outcome.status_code == 200  # 64 KiB read, the rest dropped with the socket
    assert time.monotonic() - started < 10


def test_a_silent_receiver_times_out() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)  # accepts (the kernel does) and never answers
    try:
        port = sock.getsockname()[1]
        sender = HttpSender(insecure_local=True, read_timeout_s=0.5)
        outcome = sender.send(f"http://127.0.0.1:{port}/", {}, BODY)
        assert outcome.status_code is None and "timed out" in (outcome.error or "").lower()
    finally:
        sock.close()

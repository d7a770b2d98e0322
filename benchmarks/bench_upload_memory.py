"""Peak memory of processing one large uploaded object (not a timed test).

    .venv/bin/python -m benchmarks.bench_upload_memory [--mb 200] [--type text/plain]

Starts a moto server in its own process (so the object's bytes live there,
not here), starts an upload through the API's service, streams a generated
object of ``--mb`` MiB to the presigned PUT URL in 1 MiB pieces, then runs
the real processor path (``ContentService.process_object``: HEAD, one
streamed GET, sha256, sniffing, capped text extraction, the PostgreSQL
transaction).  Reports the growth of this process's peak RSS (``VmHWM``)
across processing; the design budget is < 64 MiB whatever the object size.

Uses the machine's PostgreSQL/Redis (DATABASE_URL / REDIS_URL) in a private
database and key prefix, removed at the end.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)

BUDGET_MIB = 64
PIECE = 1024 * 1024


def peak_rss_kib() -> int:
    """This process's peak resident set size (VmHWM), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def bare_stream(endpoint: str, bucket: str, key: str) -> tuple[float, float]:
    """The baseline: one streamed GET of the object with sha256, 1 MiB at a time,
    with a plain boto3 client; (peak RSS growth MiB, seconds)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.head_object(Bucket=bucket, Key=key)
    reset_peak_rss()
    before = peak_rss_kib()
    started = time.perf_counter()
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(PIECE):
        digest.update(chunk)
    seconds = time.perf_counter() - started
    return (peak_rss_kib() - before) / 1024, seconds


def generated(total: int) -> Iterator[bytes]:
    """Deterministic text, ``PIECE`` bytes at a time (never the whole object)."""
    line = b"The quarterly plan grows revenue; every line is searchable text. 0123456789\n"
    piece = (line * (PIECE // len(line) + 1))[:PIECE]
    sent = 0
    while sent < total:
        chunk = piece[: min(PIECE, total - sent)]
        sent += len(chunk)
        yield chunk


def stream_put(url: str, headers: dict[str, str], total: int) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    path = parts.path + ("?" + parts.query if parts.query else "")
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for name, value in {**headers, "Content-Length": str(total)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    for chunk in generated(total):
        conn.send(chunk)
    status = conn.getresponse().status
    conn.close()
    return status


def start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    from devtools.services import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/moto-api/")
            conn.getresponse()
            return endpoint, proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024

    from chalicelib import bootstrap
    from chalicelib.config import Settings
    from chalicelib.domain.principal import Principal
    from devtools.s3_stack import ensure_resources
    from tests.conftest import REDIS_URL, create_database, drop_database

    endpoint, moto = start_moto()
    database_url = create_database()
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    container = None
    try:
        ensure_resources(endpoint, bucket, queue=bucket)
        settings = Settings(
            database_url=database_url,
            redis_url=REDIS_URL,
            redis_key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
            aws_endpoint_url=endpoint,
            content_bucket=bucket,
        )
        container = bootstrap.build(settings)
        who = Principal(sub="bench", org="bench", roles=frozenset({"writer"}))

        def upload(size: int) -> tuple[str, str]:
            doc = container.documents.create(who, {"title": "memory benchmark"})
            ticket = container.content.start_upload(
                who, doc.id, {"content_type": "text/plain"}, if_match=None
            )
            assert stream_put(ticket.upload_url, ticket.headers, size) == 200
            return doc.id, f"content/bench/{doc.id}/{ticket.upload_id}"

        # warm up: every import, pool and client the real path needs
        _, small = upload(64 * 1024)
        assert container.content.process_object(bucket, small) == "ready"

        doc_id, key = upload(total)
        base_growth, base_seconds = bare_stream(endpoint, bucket, key)
        reset = reset_peak_rss()
        before = peak_rss_kib()
        started = time.perf_counter()
        outcome = container.content.process_object(bucket, key)
        seconds = time.perf_counter() - started
        after = peak_rss_kib()

        content = container.documents.uow.read_document("bench", doc_id).content
        expected = hashlib.sha256()
        for chunk in generated(total):
            expected.update(chunk)
        growth_mib = (after - before) / 1024
        result = {
            "bench": "upload_memory",
            "object_mib": args.mb,
            "outcome": outcome,
            "sha256_ok": content["sha256"] == expected.hexdigest(),
            "size_ok": content["size"] == total,
            "peak_rss_before_mib": round(before / 1024, 1),
            "peak_rss_after_mib": round(after / 1024, 1),
            "peak_rss_growth_mib": round(growth_mib, 1),
            "budget_mib": BUDGET_MIB,
            "within_budget": growth_mib < BUDGET_MIB,
            "processing_s": round(seconds, 2),
            "peak_reset": reset,
            "baseline": {
                "name": "boto3 streamed GET + sha256, 1 MiB chunks",
                "peak_rss_growth_mib": round(base_growth, 1),
                "seconds": round(base_seconds, 2),
            },
        }
        print(json.dumps(result))
        if not (result["within_budget"] and result["sha256_ok"] and outcome == "ready"):
            sys.exit(1)
    finally:
        if container is not None:
            container.close()
        drop_database(database_url)
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()

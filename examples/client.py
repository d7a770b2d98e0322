"""A Python client of the document service: create, change with If-Match, retry on 412.

    .venv/bin/python examples/client.py [BASE_URL]   (default http://127.0.0.1:8000)

It needs a token: ``DOCS_TOKEN``, else one from the local dev CLI. Only the
standard library: copy ``DocumentClient`` into your own code.

Every change to an existing document carries the ETag it was based on
(``If-Match``). When somebody else changed the document meanwhile, the service
answers 412 with the current ETag; the client reads the current version again,
re-applies its change to it and retries, a bounded number of times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


class Conflict(Exception):
    """The document kept changing under us: give up after ``attempts`` tries."""


class DocumentClient:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the service's URL must be http(s)://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": content_type,
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                status, got, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:  # 4xx/5xx: a problem+json body
            status, got, raw = error.code, dict(error.headers), error.read()
        return status, got, json.loads(raw) if raw else None

    def create(self, title: str, body: Any = None) -> dict[str, Any]:
        status, _, doc = self._call("POST", "/documents", {"title": title, "body": body})
        if status != 201:
            raise RuntimeError(f"create failed: {status} {doc}")
        return dict(doc)

    def get(self, doc_id: str) -> dict[str, Any]:
        status, _, doc = self._call("GET", f"/documents/{doc_id}")
        if status != 200:
            raise RuntimeError(f"read failed: {status} {doc}")
        return dict(doc)

    def update(
        self,
        doc: dict[str, Any],
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        attempts: int = 5,
    ) -> dict[str, Any]:
        """Apply ``change`` (the current document -> a JSON merge patch) with
        If-Match; on 412 read the document again and retry."""
        for _ in range(attempts):
            status, _, answer = self._call(
                "PATCH",
                f"/documents/{doc['id']}",
                change(doc),
                headers={"If-Match": doc["etag"]},
                content_type="application/merge-patch+json",
            )
            if status == 200:
                return dict(answer)
            if status != 412:
                raise RuntimeError(f"update failed: {status} {answer}")
            doc = self.get(doc["id"])  # somebody else won: start again from theirs
        raise Conflict(f"document {doc['id']} changed {attempts} times under us")


def _token() -> str:
    if os.environ.get("DOCS_TOKEN"):
        return os.environ["DOCS_TOKEN"]
    minted = subprocess.run(  # this interpreter, the project's own CLI
        [sys.executable, "-m", "devtools.cli", "token", "--org", "acme", "--sub", "alice",
         "--roles", "writer"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return minted.stdout.strip()


def main(base_url: str) -> int:
    client = DocumentClient(base_url, _token())
    doc = client.create("Shopping list", {"items": ["milk"]})
    print(f"created {doc['id']} at version {doc['version']}")

    # a colleague changes it first: our ETag is now stale
    client.update(doc, lambda d: {"title": "Groceries"})

    # our change is based on the stale copy; update() meets the 412, re-reads, retries
    def add_bread(current: dict[str, Any]) -> dict[str, Any]:
        return {"body": {"items": [*current["body"]["items"], "bread"]}}

    done = client.update(doc, add_bread)
    print(f"now version {done['version']}: {done['title']!r} {done['body']}")
    if done["title"] != "Groceries" or done["body"]["items"] != ["milk", "bread"]:
        print("error: one of the two changes was lost", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))

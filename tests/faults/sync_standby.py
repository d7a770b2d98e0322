"""A search sync process on standby: it imports what the sync needs, then waits
for a line on stdin before it starts (``devtools.sync_worker.main``).

Starting a Python process that imports the service takes seconds on a busy
machine; the campaign keeps one standby ready, so replacing a killed consumer
costs what a warm Lambda start would, not an interpreter start.
"""

from __future__ import annotations

import sys

import opensearchpy  # noqa: F401 - imported now, not after the release
import psycopg_pool  # noqa: F401

import chalicelib.adapters.opensearch
import chalicelib.bootstrap  # noqa: F401
from devtools import sync_worker

if __name__ == "__main__":
    if sys.stdin.readline():  # EOF (the campaign ended): never start
        sync_worker.main()

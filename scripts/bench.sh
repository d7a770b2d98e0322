#!/usr/bin/env bash
# Run every benchmark on the machine's PostgreSQL and Redis and the search backend
# in use; write benchmarks/RESULTS.md, results.png and results.json (docs/benchmarks.md).
#   ./scripts/bench.sh            the full run (about 10 minutes on 2 cores)
#   ./scripts/bench.sh --quick    a smoke run (2-5 minutes; small counts, noisy)
# Other arguments go to `python -m benchmarks.run` (--only SECTION..., --skip SECTION...).
# Sets up what it needs that the tests do not: matplotlib (requirements-bench.txt),
# wrk (apt-get) and the peer, pouchdb-server (npm, into var/bench/peer).
source "$(dirname "$0")/_venv.sh"
stamp=.venv/.requirements-bench.sha256
want="$(sha256sum requirements-bench.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements-bench.txt into .venv" >&2
  .venv/bin/python -m pip install --quiet -r requirements-bench.txt >&2
  echo "$want" > "$stamp"
fi
if ! command -v wrk >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing wrk (apt-get)" >&2
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } \
      || echo "[setup] could not install wrk: the HTTP section will be skipped" >&2
  else
    echo "[setup] wrk is missing (apt-get install wrk): the HTTP section will be skipped" >&2
  fi
fi
PEER_VERSION=4.2.0
peer=var/bench/peer
if [ ! -x "$peer/node_modules/.bin/pouchdb-server" ] || [ "$(cat "$peer/.version" 2>/dev/null)" != "$PEER_VERSION" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "[setup] installing the peer, pouchdb-server $PEER_VERSION (npm, into $peer; a few minutes once)" >&2
    mkdir -p "$peer"
    (cd "$peer" && npm install --no-audit --no-fund --loglevel=error "pouchdb-server@$PEER_VERSION" >&2) \
      && echo "$PEER_VERSION" > "$peer/.version" \
      || echo "[setup] could not install the peer: the HTTP section will be skipped" >&2
  else
    echo "[setup] npm is missing: the HTTP section (next to the peer) will be skipped" >&2
  fi
fi
exec .venv/bin/python -m benchmarks.run "$@"

#!/usr/bin/env bash
# Run every benchmark on the machine's PostgreSQL and Redis and the search backend
# in use; write benchmarks/RESULTS.md, results.png and results.json (docs/benchmarks.md).
#   ./scripts/bench.sh            the full run (about 15 minutes on 2 cores)
#   ./scripts/bench.sh --quick    a smoke run (2-5 minutes; small counts, noisy)
# Other arguments go to `python -m benchmarks.run` (--only SECTION..., --skip SECTION...).
# Sets up requirements-bench.txt here; what a section needs beyond it (wrk, the
# peers pouchdb-server and Kinto) benchmarks.run installs for the chosen sections
# only (benchmarks/peers.py), so `--only handlers` installs no peer.
source "$(dirname "$0")/_venv.sh"
stamp=.venv/.requirements-bench.sha256
want="$(sha256sum requirements-bench.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements-bench.txt into .venv" >&2
  .venv/bin/python -m pip install --quiet -r requirements-bench.txt >&2
  echo "$want" > "$stamp"
fi
exec .venv/bin/python -m benchmarks.run "$@"

#!/usr/bin/env bash
# Set up and run lint, types, layers, the template checks and the whole test suite
# (unit, integration, e2e, security, the fault campaign, fuzzing).
# The static checks run beside pytest, not before it; their output follows pytest's.
# Extra arguments go to pytest (e.g. tests/unit -k patch; -n 0 runs it in one process).
source "$(dirname "$0")/_venv.sh"
# pytest-xdist workers: the suite waits on I/O more than CPU, so up to 4; but each worker
# may hold ~40 PostgreSQL connections at once (its local servers, ~12 each, and pools),
# so no more than the free connection slots allow (2 on a default server's 100).
workers="${DOCS_TEST_WORKERS:-$(.venv/bin/python - <<'PY' 2>/dev/null || echo 2
import os, psycopg
url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
with psycopg.connect(url, connect_timeout=3) as conn:
    slots = int(conn.execute("SHOW max_connections").fetchone()[0])
    used = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
print(max(1, min(4, (slots - used - 10) // 40)))
PY
)}"

checks() {
  set -e
  echo "[lint] ruff check" && .venv/bin/ruff check .
  echo "[lint] ruff format --check" && .venv/bin/ruff format --check .
  echo "[types] mypy chalicelib app.py functions devtools examples"
  .venv/bin/mypy chalicelib app.py functions devtools examples
  echo "[layers] lint-imports" && .venv/bin/lint-imports --no-cache
  # The template: cfn-lint (once), SAM's transform (offline: a region and dummy keys), checkov.
  source "$(dirname "$0")/_iac_tools.sh"
  echo "[iac] cfn-lint template.yaml" && .venv/bin/cfn-lint template.yaml
  echo "[iac] sam validate (the SAM transform; cfn-lint ran above)" && (
    export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-offline}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-offline}"
    "$(iac_tool aws-sam-cli)/bin/sam" validate --template template.yaml
  )
  echo "[iac] checkov template.yaml" && "$(iac_tool checkov)/bin/checkov" -f template.yaml \
    --framework cloudformation --quiet --compact --skip-download
}

checks_log="var/checks-$$.log"
( checks ) >"$checks_log" 2>&1 &
checks_pid=$!
trap 'kill "$checks_pid" 2>/dev/null || true; rm -f "$checks_log"' EXIT

# The real-browser test's Chromium (tests/e2e/test_real_browser.py), installed meanwhile
# when missing (apt, as root); the test waits for it, under the script's lock.
# DOCS_BROWSER_TESTS=0 skips both.
browser_pid=""
if [ "${DOCS_BROWSER_TESTS:-1}" != "0" ]; then
  ./scripts/browser_deps.sh >var/browser-deps.log 2>&1 &
  browser_pid=$!
fi

echo "[tests] pytest -n $workers (the static checks run meanwhile)"
set +e
.venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
status=$?
wait "$checks_pid"
checks_status=$?
# never cut an install short (dpkg would be left half done)
[ -n "$browser_pid" ] && wait "$browser_pid"
set -e
cat "$checks_log"
if [ "$checks_status" -ne 0 ]; then
  echo "error: a static check failed (above)" >&2
fi
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
[ "$status" -ne 0 ] && exit "$status"
exit "$checks_status"

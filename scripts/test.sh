#!/usr/bin/env bash
# Set up and run lint, types and the whole test suite (unit, integration, e2e).
# Extra arguments go to pytest (e.g. tests/unit -k patch).
source "$(dirname "$0")/_venv.sh"
echo "[lint] ruff check" && .venv/bin/ruff check .
echo "[lint] ruff format --check" && .venv/bin/ruff format --check .
echo "[types] mypy chalicelib app.py functions devtools" && .venv/bin/mypy chalicelib app.py functions devtools
echo "[tests] pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"

# Sourced by serve.sh and test.sh: create .venv and install the pinned
# requirements when they changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python 3.11+ is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements into .venv" >&2
  # chalice (its packaging commands) wants pip < 26.3
  .venv/bin/python -m pip install --quiet --upgrade "pip<26.3" >&2
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt >&2
  echo "$want" > "$stamp"
fi
mkdir -p var

#!/usr/bin/env bash
# Set up and run the service locally: API on 127.0.0.1:8000 plus its local stack.
# Extra arguments go to `python -m devtools.cli serve` (e.g. --embedded, --port 8001).
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m devtools.cli serve --host 127.0.0.1 --port 8000 "$@"

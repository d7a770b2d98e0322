#!/usr/bin/env bash
# Set up and run the service locally: the API on 127.0.0.1:8000 plus its local stack.
#   ./scripts/serve.sh             in the foreground (Ctrl-C stops it)
#   ./scripts/serve.sh --detach    in the background: returns once /health answers,
#                                  printing the URL and the log file (var/serve.log)
#   ./scripts/serve.sh --stop      stops the server that --detach started
#                                  (--stop --port 8001: that port's; --stop --all: every one)
# Other arguments go to `python -m devtools.cli serve` (e.g. --embedded, --port 8001).
source "$(dirname "$0")/_venv.sh"
if [ "${1:-}" = "--stop" ]; then
  shift
  exec .venv/bin/python -m devtools.cli stop "$@"
fi
exec .venv/bin/python -m devtools.cli serve --host 127.0.0.1 --port 8000 "$@"

#!/usr/bin/env bash
# Set up and run lint, types and the whole test suite (unit, integration, e2e).
# Extra arguments go to pytest (e.g. tests/unit -k patch).
source "$(dirname "$0")/_venv.sh"
echo "[lint] ruff check" && .venv/bin/ruff check .
echo "[lint] ruff format --check" && .venv/bin/ruff format --check .
echo "[types] mypy chalicelib app.py functions devtools examples" && .venv/bin/mypy chalicelib app.py functions devtools examples
echo "[layers] lint-imports" && .venv/bin/lint-imports --no-cache
# The template: cfn-lint, SAM's own validation (offline: a region and dummy keys), checkov.
source "$(dirname "$0")/_iac_tools.sh"
echo "[iac] cfn-lint template.yaml" && .venv/bin/cfn-lint template.yaml
echo "[iac] sam validate --lint" && (
  export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-offline}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-offline}"
  "$(iac_tool aws-sam-cli)/bin/sam" validate --lint --template template.yaml
)
echo "[iac] checkov template.yaml" && "$(iac_tool checkov)/bin/checkov" -f template.yaml \
  --framework cloudformation --quiet --compact --skip-download
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

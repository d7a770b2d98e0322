# `sam build` runs these targets (template.yaml: Metadata BuildMethod: makefile) in
# the source tree (samconfig.toml: build_in_source) with ARTIFACTS_DIR set.
# Every function gets the same runtime code (app.py, chalicelib/, functions/:
# scripts/lambda_bundle.py CODE); their dependencies are DepsLayer. Both ship bytecode
# compiled by the runtime's Python: a python3.13 on the PATH, pyenv's, or
# LAMBDA_PYTHON=/path/to/python3.13 (without one: source only, slower cold starts).
# docs/deploy.md
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
PYTHON313 ?= python3.13
DEPS_FLAGS ?=  # --with-aws-sdk: bundle the pinned boto3 instead of the runtime's

build-DepsLayer:
	$(PYTHON) scripts/lambda_bundle.py deps $(DEPS_FLAGS) "$(ARTIFACTS_DIR)/python"

build-%Function:
	$(PYTHON) scripts/lambda_bundle.py code "$(ARTIFACTS_DIR)"

# Stage code + dependencies for this machine and import every handler with python3.13
# in a bare interpreter (no grpc, no devtools): make lambda-check PYTHON313=/path/to/python3.13
lambda-check:
	$(PYTHON) scripts/lambda_bundle.py check --python $(PYTHON313)

.PHONY: build-DepsLayer lambda-check

# Two commands for a newcomer: `make demo` and `make test`. Both install what they need into .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_EXIT ?= 0
PYTEST_ARGS ?=

.PHONY: install install-sam demo test lint typecheck cfn-lint sam-validate sam-build packaging pytest bench soak sandbox clean

# The AWS SAM CLI has its own virtualenv: its pins (boto3, pydantic, cfn-lint...) are not ours.
SAM_CLI_VERSION := 1.170.0
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
# No telemetry. (build and validate still ask PyPI for a newer SAM CLI once a week, and only warn.)
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_BUILD_DIR := .aws-sam/build
# What each function's artifact holds (template.yaml, Metadata BuildMethod: makefile).
CODE_DIRS := functions integrations shared
# Bytecode shipped in the artifacts: Lambda's /var/task is read-only, so without it every cold start
# compiles every module it imports (bench/coldstart.py measures both). unchecked-hash: the pyc is
# used whatever the timestamps the zip gives the sources. The runtime is python3.11, as PYTHON is.
BYTECODE := --invalidation-mode unchecked-hash

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(SAM_STAMP):
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $(SAM_STAMP)

install-sam: $(SAM_STAMP)

demo: $(STAMP)
	DEMO_EXIT=$(DEMO_EXIT) $(BIN)/pointbridge demo

sandbox: $(STAMP)
	$(BIN)/pointbridge sandbox

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy functions integrations shared pointbridge tests bench

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow and not packaging" $(PYTEST_ARGS)

sam-validate: $(SAM_STAMP)
	$(SAM) validate --lint --template-file template.yaml

# Builds in the source folder: the default scratch copy would copy .venv and the caches for nothing.
# The layer's packages are then compiled as the functions' code is (build-%Function): SAM's Python
# builder ships them as source only.
sam-build: $(SAM_STAMP)
	$(SAM) build --build-in-source --template-file template.yaml --build-dir $(SAM_BUILD_DIR)
	$(PYTHON) -m compileall -q $(BYTECODE) $(SAM_BUILD_DIR)/DependenciesLayer/python

# `sam build` runs this once per function, with ARTIFACTS_DIR set: code only, no tests, docs or
# tools, and no dependencies (those are in DependenciesLayer).
build-%Function:
	cp -R $(CODE_DIRS) "$(ARTIFACTS_DIR)"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	cd "$(ARTIFACTS_DIR)" && $(PYTHON) -m compileall -q $(BYTECODE) $(CODE_DIRS)

# What `sam build` produced: each function's artifact and the layer (tests/packaging).
packaging: sam-build $(STAMP)
	$(BIN)/pytest -m packaging tests/packaging

test: lint typecheck cfn-lint sam-validate packaging pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# -rP: the soak's figures and seeds are printed also when it passes.
soak: $(STAMP)
	$(BIN)/pytest -m slow -rP $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .pointbridge

# Two commands for a newcomer: `make demo` and `make test`. Both install what they need into .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_EXIT ?= 0
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck cfn-lint pytest bench soak sandbox clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

test: lint typecheck cfn-lint pytest

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .pointbridge

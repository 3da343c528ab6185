# Two commands: `make run` (the hub, on this machine) and `make test` (the suite).
# Both set up everything they need first; a second run reuses what the first installed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench chaos clean

$(STAMP): pyproject.toml constraints.txt deploy/bootstrap.sh
	bash deploy/bootstrap.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)
	$(BIN)/hub kafka prepare
	$(BIN)/hub cdc prepare

run: setup
	$(BIN)/hub run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench

# The fault suite: every scenario on hubs of its own (about 20 minutes), or one:
# make chaos SCENARIO=connectors   (python -m chaos --help lists them)
chaos: setup
	$(BIN)/python -m chaos $(SCENARIO)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

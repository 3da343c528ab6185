# Two commands: `make run` (the hub, on this machine) and `make test` (the suite).
# Both set up everything they need first; a second run reuses what the first installed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench chaos fuzz clean

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

# Coverage-guided fuzzing (atheris, the `fuzz` extra): each harness under fuzz/ for
# FUZZ_SECONDS (default 300), then the ingress under FUZZ_REQUESTS generated requests
# (python -m bench fuzz_ingress; 100,000 for the README's figures). A crash or a broken
# rule fails the run; libFuzzer saves the input under fuzz/crashes/.
FUZZ_SECONDS ?= 300
FUZZ_REQUESTS ?= 10000
fuzz: setup
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,fuzz]'
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m fuzz.verifiers
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m fuzz.decision
	FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(BIN)/python -m bench fuzz_ingress

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

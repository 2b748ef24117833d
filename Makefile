# ArmoniK in Python: control plane, compute plane and deployment toolkit.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat $(ROOT)/pyproject.toml | md5sum | cut -c1-12)
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard armonik_core armonik_deploy tests benchmarks)

.PHONY: venv deploy destroy status test lint typecheck bench clean

$(STAMP): $(ROOT)/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e "$(ROOT)[test]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

## Start the local deployment (control plane on embedded storage) in the background.
deploy: venv
	$(PY) -m armonik_deploy deploy

## Stop every process the local deployment started.
destroy: venv
	$(PY) -m armonik_deploy destroy

status: venv
	$(PY) -m armonik_deploy status

## Run the whole test suite.
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

typecheck: venv
	$(PY) -m mypy armonik_core armonik_deploy

bench: venv
	$(PY) benchmarks/submission.py

clean:
	rm -rf $(VENV) generated .pytest_cache .mypy_cache .ruff_cache

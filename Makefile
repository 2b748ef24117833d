# ArmoniK in Python: control plane, compute plane and deployment toolkit.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat $(ROOT)/pyproject.toml | md5sum | cut -c1-12)
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard armonik_core armonik_deploy armonik_samples armonik_graph tests benchmarks)

.PHONY: venv deploy destroy status render images images-base test lint typecheck bench clean

$(STAMP): $(ROOT)/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e "$(ROOT)[test]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# Local deployment: `make deploy PARAMETERS_FILE=my.tfvars` (HCL) or `.tfvars.json`; data, logs and outputs
# go to GENERATED_DIR.
QUICK_DEPLOY := $(ROOT)/infrastructure/quick-deploy/localhost
PARAMETERS_FILE ?= $(QUICK_DEPLOY)/parameters.tfvars
VERSIONS_FILE ?= $(QUICK_DEPLOY)/versions.tfvars.json
GENERATED_DIR ?= $(ROOT)/generated

# TARGET: local (processes on this machine, the default of deploy and destroy) or kubernetes (Terraform);
# `render` renders for kubernetes only and says so when TARGET is another.
TARGET ?= local

## Start the local deployment (control plane, polling agents and workers, metrics exporter) under a
## supervisor, or apply edited parameters to the running one; prints `export AKCONFIG=...`.
## `make deploy TARGET=kubernetes`: certificates, terraform init + apply, wait for the Deployments, outputs.
deploy: venv
	$(PY) -m armonik_deploy deploy --parameters "$(PARAMETERS_FILE)" --versions "$(VERSIONS_FILE)" \
		--generated "$(GENERATED_DIR)" --target "$(TARGET)"

## Stop every process the local deployment started (data is kept); TARGET=kubernetes: terraform destroy.
destroy: venv
	$(PY) -m armonik_deploy destroy --generated "$(GENERATED_DIR)" --target "$(TARGET)" \
		--parameters "$(PARAMETERS_FILE)" --versions "$(VERSIONS_FILE)"

## Processes of the local deployment: pid, restarts, uptime.
status: venv
	$(PY) -m armonik_deploy status --generated "$(GENERATED_DIR)" --target "$(TARGET)" --parameters "$(PARAMETERS_FILE)"

## Kubernetes manifests of the deployment: `make render TARGET=kubernetes OUT=DIR` (one YAML file per object).
OUT ?= $(GENERATED_DIR)/manifests
render: venv
	@test "$(TARGET)" = kubernetes || { echo "render: TARGET=$(TARGET): only kubernetes is rendered" >&2; exit 2; }
	$(PY) -m armonik_deploy render "$(OUT)" --parameters "$(PARAMETERS_FILE)" --versions "$(VERSIONS_FILE)"

## Container images (podman, else docker): `make images [BASE_IMAGE=...] [PUSH=REGISTRY]`;
## `make images-base` builds a Debian Python base without any registry (debootstrap, as root).
BASE_IMAGE ?=
PUSH ?=
images: venv
	$(PY) -m armonik_deploy images build --versions "$(VERSIONS_FILE)" $(if $(BASE_IMAGE),--base "$(BASE_IMAGE)") \
		$(if $(PUSH),--push "$(PUSH)")

images-base: venv
	$(PY) -m armonik_deploy images base

## Run the whole test suite.
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

typecheck: venv
	$(PY) -m mypy armonik_core armonik_deploy armonik_samples armonik_graph

bench: venv
	$(PY) benchmarks/submission.py

clean:
	rm -rf $(VENV) generated .pytest_cache .mypy_cache .ruff_cache

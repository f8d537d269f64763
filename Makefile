# Quick start: `make demo` (set up, then run the whole pipeline on its defaults) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export RAY_AUTH_MODE := disabled
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup validator test demo clean
# data/ (tracked by data.dvc) comes from the DVC cache when it has it; on a fresh clone it has not,
# and a failed checkout removes the empty folder: make it afterwards.
setup: $(STAMP)
	@$(VENV)/bin/dvc checkout -q data.dvc 2>/dev/null || true
	@mkdir -p data/local

# The stamp makes a second `make setup` instant; it is redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The Khronos glTF validator (npm) for the tests that check every GLB the project writes; without
# node and npm, or offline, those tests skip and say why.
VALIDATOR := $(VENV)/node_modules/gltf-validator/package.json
validator: $(VALIDATOR)
$(VALIDATOR):
	@command -v npm >/dev/null && timeout 300 npm install -q --no-save --no-package-lock --no-audit --no-fund \
		--prefix $(VENV) gltf-validator@2.0.0-dev.3.10 || echo "no glTF validator (needs node and npm): its tests skip"

SOURCES := hi3dgen hi3dgen_cli pipelines flows tests bench
test: setup validator
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/pytest -q tests

demo: setup
	$(VENV)/bin/hi3dgen run

clean:
	rm -rf outputs .hi3dgen

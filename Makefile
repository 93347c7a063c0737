# The two commands of the README do all the set-up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA := $(CURDIR)/data
export DAGSTER_HOME := $(DATA)/dagster_home
export PYTHONUNBUFFERED := 1

.PHONY: demo test run ui bench bench-history lint clean

# uv (from PyPI, into the venv) resolves and installs the project in seconds where pip took
# about 45 (docs/performance.md), trusting the system's certificates as pip does; should uv
# fail, pip installs the same. The venv keeps its pip for anyone who wants it.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'uv>=0.9'
	$(VENV)/bin/uv pip install --quiet --native-tls --python $(PY) -e '.[dev]' \
		|| $(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(PY) scripts/demo.py

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	bash scripts/ensure-postgres.sh
	# Two workers, an xdist group at a time: a test file each, the three that read the tiny
	# story in one (tests/conftest.py), so module fixtures and the story run once; OpenMP
	# threads sleep instead of spinning while they wait, so two LightGBM trainings share cores.
	OMP_WAIT_POLICY=passive $(VENV)/bin/pytest -q -n 2 --dist loadgroup --durations=10

# An operator's re-run after fixing a file: the nightly job over FROM … TO (local dates) in one
# run, into the instance `make ui` shows; prints per platform-date what was published or why not.
run: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	@test -n "$(FROM)" || { echo "usage: make run FROM=YYYY-MM-DD [TO=YYYY-MM-DD]"; exit 2; }
	$(PY) -m orchestration.run $(FROM) $(or $(TO),$(FROM))

ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000

bench: $(VENV)/.installed
	$(PY) -m scripts.bench

# A nightly partition's cost after 30, 180 and 365 days of the demo's world, side by side.
bench-history: $(VENV)/.installed
	$(PY) -m scripts.bench.history

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(DATA)

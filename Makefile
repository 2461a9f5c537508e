# Two commands for people: `make run` runs the main job, `make test` runs every test.
# Both create .venv and install the project into it on first use; pip runs again only when
# pyproject.toml is newer than the stamp .venv/.installed. Extra arguments: ARGS="...".

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test screenshots

## The main job: a first full cycle (ingest, editions, outbox), then worker, beat and web
## keep going on schedule until Ctrl-C. ARGS=--once stops after the first cycle.
run: $(STAMP)
	$(VENV)/bin/distributor run $(ARGS)

## The whole test suite (PostgreSQL and Redis tests need the servers; .ci/run starts them).
## In TEST_WORKERS processes (pytest-xdist): most tests wait on servers, sockets and child
## processes, not the CPU, so four share two cores well (~14 min in one process). Each
## worker has its own Redis database, PostgreSQL schema and temp dirs (tests/conftest.py);
## the tests that start real worker/beat processes run in two lanes (PROCESS_LANES there).
## TEST_WORKERS=0 runs everything in this one process.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

## Console, public pages and a digest rendered by headless Chromium into docs/screenshots/.
screenshots: $(STAMP)
	$(VENV)/bin/python docs/make_screenshots.py

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "make: $(PYTHON) is older than Python 3.11; install 3.11+ or pass PYTHON=python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# --quiet hides pip's progress chatter; its errors and warnings still print.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

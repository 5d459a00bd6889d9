# TrackFlow — `make run` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TRACKER := web/tracker

.PHONY: run test test-unit test-integration test-tracker test-faults lint bench bench-short kafka-start kafka-stop \
        tracker deps browser dashboard-e2e clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

deps: $(BIN)/.installed
	@deploy/kafka.sh fetch

# The browser tracker bundle the worker serves at /tracker.js.
tracker:
	@if [ -f $(TRACKER)/package.json ]; then \
	  cd $(TRACKER) && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run -s build; \
	fi

# playwright-core for the dashboard's browser test.
dashboard-e2e:
	@cd web/dashboard/e2e && { [ -d node_modules ] || npm ci --no-audit --no-fund; }

# Debian's Chromium for the browser tests (no browser download: playwright-core drives it).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

run: deps tracker
	deploy/run.sh

test: deps tracker browser dashboard-e2e
	cd $(TRACKER) && npm test --silent
	$(BIN)/pytest -q

test-unit: deps
	$(BIN)/pytest -q tests/unit

test-tracker: tracker
	cd $(TRACKER) && npm test --silent

test-integration: deps tracker browser dashboard-e2e
	$(BIN)/pytest -q tests/integration

# Full fault suite: 100,000 events per scenario; writes tests/faults/results.md.
test-faults: deps
	TRACKFLOW_FAULTS_FULL=1 $(BIN)/pytest -q -s tests/faults

# Ingestion benchmark (full run, about 15 minutes): bench/results.md and bench/results.png.
bench: deps
	$(BIN)/python -m bench.run --full --ingest-workers 1

bench-short: deps
	$(BIN)/python -m bench.run --short --out var/bench-short

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

kafka-start: deps
	deploy/kafka.sh start

kafka-stop:
	deploy/kafka.sh stop

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

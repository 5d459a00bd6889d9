# TrackFlow — `make run` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TRACKER := web/tracker

.PHONY: run test test-unit test-integration test-tracker test-faults test-container lint bench bench-short \
        kafka-start kafka-stop tracker deps browser dashboard-e2e container-tools container clean

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

# podman (with runc) and debootstrap, to build and run the worker's image in the tests.
container-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

# The worker's image (deploy/container/Containerfile). BASE_IMAGE=... builds on another base;
# CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt lets pip trust a TLS-inspecting proxy.
CONTAINER_IMAGE ?= trackflow:latest
comma := ,
container: tracker
	podman build --format docker $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	  $(if $(CA_BUNDLE),--secret id=ca-bundle$(comma)src=$(CA_BUNDLE)) \
	  -f deploy/container/Containerfile -t $(CONTAINER_IMAGE) .

run: deps tracker
	deploy/run.sh

test: deps tracker browser dashboard-e2e container-tools
	cd $(TRACKER) && npm test --silent && npm run -s size
	$(BIN)/pytest -q

test-unit: deps
	$(BIN)/pytest -q tests/unit

# The image built on a debootstrapped Debian base and run against a real broker (part of `make test`).
test-container: deps tracker container-tools
	$(BIN)/pytest -q tests/container

test-tracker: tracker
	cd $(TRACKER) && npm test --silent && npm run -s size

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

# Style, types, the layers between packages (pyproject's [tool.importlinter]), dead code
# (vulture, with vulture_whitelist.py) and undeclared or unused dependencies (deptry).
lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture
	$(BIN)/deptry .

kafka-start: deps
	deploy/kafka.sh start

kafka-stop:
	deploy/kafka.sh stop

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache

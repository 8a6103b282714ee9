# tthc-bus: `make run` starts the whole bus locally, `make test` runs every test.
# Both create .venv and install the project from the lock file when needed; Kafka is fetched with
# mvn into .kafka/ the first time it is started.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Every dependency, runtime and dev, transitive ones included, pinned with hashes; `make lock`
# refreshes it from pyproject.toml (`make lock UPGRADE=1` also moves pins to the newest allowed).
LOCK := requirements.lock
# uv installs from the lock; it is pinned and hashed in a lock of its own, installed with pip.
# To move it: change UV_VERSION, then `make lock`.
UV_VERSION := 0.13.9
UV_LOCK := requirements-uv.lock
UV_STAMP := $(VENV)/.uv-installed
# The platform's certificate store, as pip uses it; uv never downloads a Python of its own.
UV := UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never $(BIN)/uv
UV_COMPILE := $(UV) pip compile --quiet --python $(BIN)/python --python-version 3.11 --universal \
  --generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: run test faults lint typecheck unit bench kafka lock prereqs postgres prometheus chromium clean

# The venv, with uv in it.
$(UV_STAMP): $(UV_LOCK)
	@$(MAKE) --no-print-directory prereqs
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: could not create a virtual environment with '$(PYTHON) -m venv'."; \
	  echo "       On Debian: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(UV_LOCK)
	@touch $@

# Exactly the lock (a package that left it is removed), then the project itself: editable, no
# dependencies, built with the setuptools and wheel from the lock.
$(STAMP): $(LOCK) pyproject.toml $(UV_STAMP)
	@$(MAKE) --no-print-directory prereqs
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $@

# The build backend ([build-system] requires) is locked too, for the install above.
BUILD_REQUIRES := $(VENV)/build-system-requires.txt
lock: $(UV_STAMP)
	echo "uv==$(UV_VERSION)" | $(UV_COMPILE) --no-annotate - -o $(VENV)/uv.lock.new
	@cmp -s $(VENV)/uv.lock.new $(UV_LOCK) && rm $(VENV)/uv.lock.new || mv $(VENV)/uv.lock.new $(UV_LOCK)
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' >$(BUILD_REQUIRES)
	$(UV_COMPILE) --extra dev pyproject.toml $(BUILD_REQUIRES) -o $(LOCK)

# Python 3.11, Java 17+ and Maven are needed; say exactly which is missing and how to get it.
prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null || { \
	  echo "error: Python 3.11 is needed as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1))."; \
	  echo "       Install it (Debian: apt-get install python3.11 python3.11-venv) or run make PYTHON=/path/to/python3.11"; exit 1; }
	@command -v java >/dev/null || { \
	  echo "error: 'java' not found: the local Kafka broker needs Java 17+."; \
	  echo "       On Debian: apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v mvn >/dev/null || { \
	  echo "error: 'mvn' not found: Maven fetches Apache Kafka from Maven Central."; \
	  echo "       On Debian: apt-get install maven"; exit 1; }

# The audit ledger's tests start a throwaway PostgreSQL server of their own (tests/postgres.py):
# they need the server binaries, from Debian's postgresql package, installed here when missing.
PG_BINARIES := initdb pg_ctl postgres
PG_FOUND = for dir in $$(pg_config --bindir 2>/dev/null) /usr/lib/postgresql/*/bin; do \
  ok=1; for b in $(PG_BINARIES); do test -x "$$dir/$$b" || ok=; done; test -n "$$ok" && exit 0; \
  done; exit 1
postgres:
	@if ($(PG_FOUND)); then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "error: the PostgreSQL server ($(PG_BINARIES)) is not installed: the audit ledger's tests start one."; \
	  echo "       On Debian, as root: apt-get update && apt-get install --no-install-recommends postgresql"; exit 1; fi; \
	echo "PostgreSQL server binaries missing: installing Debian's postgresql package"; \
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } || { \
	  echo "error: apt-get could not install postgresql (see above); the audit ledger's tests need its"; \
	  echo "       server binaries ($(PG_BINARIES)) in /usr/lib/postgresql/<version>/bin"; exit 1; }; \
	($(PG_FOUND)) || { \
	  echo "error: postgresql is installed but $(PG_BINARIES) are not in /usr/lib/postgresql/*/bin"; exit 1; }

# A command the tests need, from a Debian package installed here when missing:
# $(call debian_tool,COMMAND,PACKAGE,WHAT NEEDS IT) (no commas in the last argument).
define debian_tool
	@if command -v $(1) >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "error: $(1) is not installed: $(3)."; \
	  echo "       On Debian, as root: apt-get update && apt-get install --no-install-recommends $(2)"; exit 1; fi; \
	echo "$(1) missing: installing Debian's $(2) package"; \
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(2); } || { \
	  echo "error: apt-get could not install $(2) (see above): $(3)"; exit 1; }; \
	command -v $(1) >/dev/null || { echo "error: $(2) is installed but $(1) is not on PATH"; exit 1; }
endef

# promtool checks the metrics and the alert rules (docker/prometheus).
prometheus:
	$(call debian_tool,promtool,prometheus,the metrics and alert-rule tests need it)

# The dashboard's test drives a headless browser (Playwright downloads no browser of its own).
chromium:
	$(call debian_tool,chromium,chromium,the dashboard's test runs it headless)

kafka: $(STAMP)
	$(BIN)/tthc-bus kafka install

run: $(STAMP)
	$(BIN)/tthc-bus dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck postgres prometheus chromium
	$(BIN)/tthc-bus kafka install
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The fault suite alone (it is part of `make test` too), then docs/reliability.md from its figures.
faults: $(STAMP)
	$(BIN)/tthc-bus kafka install
	rm -rf .run/faults
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_faults_*.py
	$(BIN)/python -m tests.faults_report

# `make bench` runs every scenario (the memory soak takes 10 minutes);
# `make bench SCENARIO=lookup-throughput ARGS="--duration 60"` runs one.
SCENARIOS := lookup-throughput lookup-overhead datasets-throughput prefill-throughput audit-cost overload scaling sync-throughput memory
bench: $(STAMP)
	$(BIN)/tthc-bus kafka install
	@for s in $(or $(SCENARIO),$(SCENARIOS)); do $(BIN)/python -m bench $$s $(ARGS) || exit 1; done

clean:
	rm -rf .run build *.egg-info

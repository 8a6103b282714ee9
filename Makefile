# tthc-bus: `make run` starts the whole bus locally, `make test` runs every test.
# Both create .venv and install the project with its pinned dependencies when needed; Kafka is
# fetched with mvn into .kafka/ the first time it is started.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench kafka prereqs clean

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory prereqs
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: could not create a virtual environment with '$(PYTHON) -m venv'."; \
	  echo "       On Debian: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

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

kafka: $(STAMP)
	$(BIN)/tthc-bus kafka install

run: $(STAMP)
	$(BIN)/tthc-bus dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/tthc-bus kafka install
	$(BIN)/python -m pytest -q -p no:cacheprovider

# `make bench` runs every scenario (the memory soak takes 10 minutes);
# `make bench SCENARIO=lookup-throughput ARGS="--duration 60"` runs one.
SCENARIOS := lookup-throughput lookup-overhead sync-throughput memory
bench: $(STAMP)
	$(BIN)/tthc-bus kafka install
	@for s in $(or $(SCENARIO),$(SCENARIOS)); do $(BIN)/python -m bench $$s $(ARGS) || exit 1; done

clean:
	rm -rf .run build *.egg-info

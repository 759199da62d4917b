# Development tasks. Everything starts from a fresh clone: the first target that needs the
# virtualenv creates it, and dependencies are reinstalled only when pyproject.toml or
# scripts/constraints.txt change.
#
#   make test         lint, type check, start the local stack, run every test tier
#                     (installs Chromium and promtool for the tests when they are missing)
#   make demo         the whole system on the local stack
#   make stack-up     Kafka + Redis on 127.0.0.1 (make stack-down / stack-status)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := scripts/constraints.txt
# Only the tiers that exist: an empty tier directory is not in a fresh clone.
TEST_DIRS := $(wildcard tests/unit tests/integration tests/e2e)

.DEFAULT_GOAL := help
.PHONY: help install demo test lint stack-up stack-down stack-status test-tools compose-check \
	constraints clean distclean

help:
	@echo "make test          lint + type check + local stack + all tests (what CI runs)"
	@echo "make demo          start the local stack and run the system demo"
	@echo "make install       the venv (.venv) with the pinned dependencies, and the package"
	@echo "make lint          ruff and mypy"
	@echo "make test-tools    promtool and Chromium for the ops pages' and alerts' tests"
	@echo "make stack-up      start Kafka and Redis on 127.0.0.1 (stack-down, stack-status)"
	@echo "make compose-check validate docker-compose.yml (needs docker compose)"
	@echo "make constraints   re-resolve $(CONSTRAINTS) from pyproject.toml"
	@echo "make clean         remove caches; make distclean also the venv and .stack/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c $(CONSTRAINTS) -e '.[dev]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint stack-up test-tools
	STREAMER_REQUIRE_STACK=1 $(BIN)/pytest $(TEST_DIRS) -q -ra

demo: stack-up
	$(BIN)/fraud-streamer demo

stack-up: $(STAMP)
	$(BIN)/fraud-streamer stack up

stack-down:
	@if [ -x $(BIN)/fraud-streamer ]; then $(BIN)/fraud-streamer stack down; \
	else echo "no $(VENV): nothing was started"; fi

stack-status: $(STAMP)
	$(BIN)/fraud-streamer stack status

# Chromium for the browser tests, promtool for the alerting rules' tests.
test-tools:
	@scripts/install_test_tools.sh

# The docker CLI validates the file without an engine, when it has the compose plugin.
compose-check:
	@if docker compose version >/dev/null 2>&1; then \
		docker compose config -q && echo "docker-compose.yml is valid"; \
	else echo "skipped: docker compose is not installed"; fi

# Resolve the dependency set afresh in a throw-away venv and pin it.
constraints:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp" && \
	"$$tmp/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' && \
	{ sed -n '/^#/p' $(CONSTRAINTS); \
	  "$$tmp/bin/python" -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new && \
	mv $(CONSTRAINTS).new $(CONSTRAINTS) && echo "$(CONSTRAINTS) updated"

clean:
	rm -rf .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: stack-down clean
	rm -rf $(VENV) .stack

# One command to run, one to test; both install what they need first.
#   make run    the service on http://127.0.0.1:8000 (embedded Redis unless REDIS_URL is set)
#   make test   lint, type-check and the whole test suite
#   make bench  the benchmarks in bench/ (not part of the tests)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

run: install
	$(BIN)/onetimeshare serve

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.transfer

clean:
	rm -rf $(VENV) data artifacts .pytest_cache .mypy_cache .ruff_cache

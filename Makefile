# One command to run, one to test; both install what they need first.
#   make run    the service on http://127.0.0.1:8000 (embedded Redis unless REDIS_URL is set)
#   make test   lint, type-check and the whole test suite, browser tests included
#   make bench  the benchmarks in bench/ (not part of the tests)
#   make dist   the sdist and the wheel, into dist/

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
VENDOR := static/vendor/.installed
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser run test lint bench dist clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Front-end libraries come from the npm registry at pinned versions, never from git.
$(VENDOR): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/htmx-ext-sse/dist/sse.min.js static/vendor/sse.min.js
	touch $@

install: $(INSTALLED) $(VENDOR)

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/onetimeshare serve

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy

test: lint browser
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest

bench: install
	$(BIN)/python -m bench.suite

# The sdist, then the wheel built from that sdist (so it proves the sdist complete);
# the files served (templates, static, htmx) are package data in both.
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) node_modules static/vendor data artifacts dist .pytest_cache .mypy_cache .ruff_cache

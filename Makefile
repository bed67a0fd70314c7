# One command to run, one to test; both install what they need first.
#   make run     the service on http://127.0.0.1:8000 (embedded Redis unless REDIS_URL is set)
#   make test    lint, type-check and the whole test suite, browser tests included
#   make dist    the sdist and the wheel, into dist/
#   make vendor  refresh htmx and its SSE extension in static/vendor/ from npm
#   make bench   the benchmarks in bench/ (not part of the tests; BENCH_ARGS=--quick)
#   make settings-table  rewrite the README's settings table from app/config.py
#
# Running needs Python only: htmx is committed in static/vendor/. Node (npm) is used by
# the tests (axe-core for the browser tests) and by `make vendor`, never to run the service.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.installed
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser run test lint dist vendor bench settings-table clean

# --- running: Python only --------------------------------------------------------------

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

run: install
	$(BIN)/onetimeshare serve

# --- testing: also Node, for test-only tools -------------------------------------------

# npm packages at the versions package-lock.json pins, each tarball checked against the
# lock's integrity hash: axe-core for the browser tests (and the libraries make vendor
# copies). Installed once; again when package.json or the lock change.
$(NODE_INSTALLED): package.json package-lock.json
	$(NPM_CI)
	touch $@

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check app tests bench tools
	$(BIN)/ruff format --check app tests bench tools
	$(BIN)/mypy

test: lint browser $(NODE_INSTALLED)
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest

# --- maintenance -----------------------------------------------------------------------

# Front-end libraries come from the npm registry at the versions package.json pins,
# never from git or a CDN. First the lock follows package.json (a no-op when they agree;
# after an edit it records the new versions and their tarballs' hashes), then a fresh
# npm ci installs exactly the lock, verifying every tarball against it, and
# tools/vendor.py copies the files and rewrites static/vendor/manifest.json. Nothing
# changed: the same bytes, and git stays clean. Commit what it changes.
vendor:
	npm install --package-lock-only --no-audit --no-fund --loglevel=error
	$(NPM_CI)
	touch $(NODE_INSTALLED)
	$(PYTHON) tools/vendor.py

# The bench extra: Flask and gunicorn for the reference app in bench/reference/.
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

# The table of settings in README.md, from their declarations in app/config.py (a test
# fails while the two disagree). Commit what it changes.
settings-table: install
	$(BIN)/python tools/settings_table.py

# The sdist, then the wheel built from that sdist (so it proves the sdist complete);
# the files served (templates, static, htmx) are package data in both.
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# static/vendor/ is committed, so it stays.
clean:
	rm -rf $(VENV) node_modules data artifacts dist .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README's quick start: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DATA   ?= ./data

.PHONY: serve test lint install bench clean chromium client-venvs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/trajscope serve --data $(DATA)

tests/e2e/js/node_modules/.package-lock.json: tests/e2e/js/package.json tests/e2e/js/package-lock.json
	cd tests/e2e/js && npm ci --no-audit --no-fund --loglevel=error

lint: install
	$(BIN)/ruff check .

# The web UI tests drive Debian's chromium; Playwright's own browser download does not work offline.
chromium:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium)

# Real agent frameworks whose pins clash with ours run from environments of their own (tests/clients),
# built once from their lock files and cached outside the work tree.
client-venvs: install
	$(BIN)/python -m tests.clients.venvs

test: install tests/e2e/js/node_modules/.package-lock.json lint chromium client-venvs
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/lookup.py
	$(BIN)/python bench/trajectory_stats.py
	$(BIN)/python bench/compare_phoenix.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/sql_formats.py
	$(BIN)/python bench/ui_render.py

clean:
	rm -rf $(VENV) tests/e2e/js/node_modules .pytest_cache test-artifacts

# The two commands a newcomer needs: `make run` and `make test`. Both create the
# virtualenv and install the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint services chromium directories bench clean

$(STAMP): setup.cfg pyproject.toml package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf static/govuk && mkdir -p static/govuk
	cp -r node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.css \
	      node_modules/govuk-frontend/dist/govuk/assets static/govuk/
	touch $(STAMP)

install: $(STAMP)

# Serve on the embedded default (SQLite, in-process Redis stand-in, mail to files)
# with the demo data loaded; its tokens are printed before the server starts.
# `make run PORT=8080` serves on another port, and the links in its emails follow.
PORT ?= 5000
run: $(STAMP)
	$(BIN)/helpdesk db upgrade
	PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) $(BIN)/helpdesk demo
	PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) $(BIN)/helpdesk run --port $(PORT)

# The whole suite, against real PostgreSQL and Redis (started first if they are down),
# with the browser tests in Debian's Chromium and the directory tests against their own
# OpenLDAP and Samba AD (each installed first if it is missing).
test: $(STAMP) services chromium directories
	$(BIN)/python -m pytest

services:
	scripts/ensure-services

chromium:
	scripts/ensure-chromium

directories:
	scripts/ensure-directories

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) services
	$(BIN)/python -m bench.roster_import
	$(BIN)/python -m bench.incidents_throughput
	$(BIN)/python -m bench.filing_cost
	$(BIN)/python -m bench.fulfilment
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.class_reset
	$(BIN)/python -m bench.term_start
	$(BIN)/python -m bench.self_service

clean:
	rm -rf $(VENV) node_modules static/govuk instance .pytest_cache .mypy_cache .ruff_cache

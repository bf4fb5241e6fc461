# Two commands: `make run` serves Gatehouse, `make test` runs the whole suite.
# Both create .venv and install the pinned dependencies on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
export FLASK_APP := run
# `make run` is for development; production sets GATEHOUSE_ENV=production and its secrets.
export GATEHOUSE_ENV ?= development

.PHONY: run test lint check-migrations bench venv clean

run: $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/python run.py

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# Figures, not a test: login timing for real vs unknown accounts (SECURITY.md LOG-02).
bench: $(STAMP)
	$(BIN)/python bench/login_timing.py

lint: $(STAMP)
	$(BIN)/ruff check .

# Fails when the models and the migrations disagree, or a migration does not round-trip:
# upgrade, check, downgrade to nothing, upgrade, upgrade again (a no-op), check.
# Uses DATABASE_URL when set (its tables are dropped by the downgrade), else a scratch SQLite file.
check-migrations: $(STAMP)
	@tmp=$$(mktemp -d); \
	export GATEHOUSE_ENV=development DATABASE_URL=$${DATABASE_URL:-sqlite:///$$tmp/check.db}; \
	$(BIN)/flask db upgrade && $(BIN)/flask db check && \
	$(BIN)/flask db downgrade base && $(BIN)/flask db upgrade && $(BIN)/flask db upgrade && \
	$(BIN)/flask db check; \
	status=$$?; rm -rf $$tmp; exit $$status

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

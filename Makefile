# evhub — the README's commands. Each target creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# -n auto: one pytest-xdist worker per core, each with its own database (tests/conftest.py); --dist loadgroup
# shares the tests out one by one, except that a module with a module-scoped fixture (the demo runs) stays on one
# worker, so that fixture is built once (tests/conftest.py: pytest_xdist_make_scheduler).
PYTEST_ARGS ?= -n auto --dist loadgroup --durations=15
ARGS ?=

.PHONY: demo test lint bench faults serve clean install

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "error: evhub needs Python >= 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs only when the project's metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# make demo ARGS=--keep-running: the hub stays up afterwards (portal, API) on the demo's data
demo: $(STAMP)
	@bash scripts/test-setup.sh --demo
	$(BIN)/evhub demo $(ARGS)

test: $(STAMP)
	@bash scripts/test-setup.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (style), lint-imports (the layers of docs/design.md, contracts in pyproject.toml), mypy (types)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# The fault suite (docs/faults.md): its own PostgreSQL cluster, evhub serve, 200 chargers, two partners, an SMTP
# sink, loopback only; kill -9, partner faults, PostgreSQL and SMTP outages. Minutes; exits 1 on anything lost.
# make faults ARGS="--chargers 50 --kills 1"
faults: $(STAMP)
	timeout 1800 $(BIN)/python -m faults $(ARGS)

serve: $(STAMP)
	$(BIN)/evhub serve

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

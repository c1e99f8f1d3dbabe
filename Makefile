# mmdx: `make demo` runs the main workflow end to end; `make test` runs the whole test suite.
# Both create .venv on first use (Python 3.11) and install everything the project needs.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup demo test test-fast lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# one pip call installs the project, its pinned torch (CPU build here) and the dev tools
	$(BIN)/python -m pip install --quiet -e ".[dev]" torch==2.13.0
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Ctrl+C ends the demo (it is how its dashboard is closed): mmdx demo then exits 0, so make stays quiet
demo: setup
	$(BIN)/mmdx demo

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache runs/demo cohorts/demo

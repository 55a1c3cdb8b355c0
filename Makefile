# One command runs the product, one passes the tests. Each installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .parindex

.PHONY: up demo test test-fast lint check contracts bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

up: $(VENV)/.installed
	$(VENV)/bin/parindex up --demo --state-dir $(STATE_DIR)

demo: up

# Two worker processes, whole files each, the longest first (tests/conftest.py: HEAVY_FIRST).
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The inner loop: only the tests that need no server (marker `unit`), in seconds.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m unit

# What CI checks besides the tests: lint, formatting, types.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

check: lint

contracts: $(VENV)/.installed
	$(VENV)/bin/parindex contracts

clean:
	rm -rf $(VENV) $(STATE_DIR) test-artifacts

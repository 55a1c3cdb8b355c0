# One command runs the product, one passes the tests. Each installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .parindex

.PHONY: up demo test lint contracts bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

up: $(VENV)/.installed
	$(VENV)/bin/parindex up --demo --state-dir $(STATE_DIR)

demo: up

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

contracts: $(VENV)/.installed
	$(VENV)/bin/parindex contracts

clean:
	rm -rf $(VENV) $(STATE_DIR) test-artifacts

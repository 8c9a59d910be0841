# Poolwarden: `make run` starts everything with embedded defaults, `make test` runs the suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Wheels only: nothing is compiled, so no compiler or -dev package is ever needed.
PIP     = $(BIN)/python -m pip install --quiet --only-binary=:all:

.PHONY: run test manage lint format bench check-python clean

run: $(VENV)/.installed
	$(BIN)/python manage.py run || test $$? -eq 130

test: $(VENV)/.installed-dev
	tests/system-deps
	$(BIN)/pytest -n 4 $(PYTEST_ARGS)

# Any manage.py command with the project's Python: make manage ARGS="route --mail-from a@b.example"
manage: $(VENV)/.installed
	$(BIN)/python manage.py $(ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 (e.g. apt-get install python3.11 python3.11-venv) or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || { echo "error: $(PYTHON) is not Python 3.11" >&2; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks venv/ensurepip; apt-get install python3.11-venv" >&2; exit 2; }

$(VENV)/bin/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(VENV)/bin/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/bin/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) var

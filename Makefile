# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest audit install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/monitor run --config config.example.toml

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks examples
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy monitor

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

# Security: bandit on monitor/ (bandit.yaml explains every skipped test) and the pinned
# dependencies against PyPI's vulnerability data.
audit: $(STAMP)
	$(BIN)/bandit -c bandit.yaml -r monitor -q
	$(BIN)/pip-audit -r constraints.txt --no-deps --disable-pip --progress-spinner off

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache .import_linter_cache

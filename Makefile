# Two commands on a fresh machine: `make run` (the gateway) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/gateway serve

check: $(BIN)/.installed
	scripts/check

test: $(BIN)/.installed
	scripts/ensure-redis
	scripts/check
	$(BIN)/pytest

bench: $(BIN)/.installed
	scripts/ensure-bench-tools
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

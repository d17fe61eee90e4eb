# Two commands on a fresh machine: `make run` (the gateway) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 26.3

.PHONY: run test check bench lock clean

# Exact versions from requirements-dev.lock (`make lock` resolves them again), then the gateway itself
# (PYTHONWARNINGS: setuptools warns about every editable install of a flat layout; nothing to act on).
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps -e .
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

lock:
	scripts/lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

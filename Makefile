# Two commands on a fresh machine: `make run` (the gateway) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 26.3
NODE_DEPS := tests/node/node_modules/.installed

.PHONY: run test check bench lock clean deploy-tools compiled

# Exact versions from requirements-dev.lock (`make lock` resolves them again), then the gateway itself
# (PYTHONWARNINGS: setuptools warns about every editable install of a flat layout; nothing to act on).
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The OpenAI Node SDK, the suite's second client, at the version in tests/node/package-lock.json.
$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --silent
	touch $@

# The request path's modules compiled with mypyc into build/mypyc (gateway/compiled.py says how they are used);
# a no-op while the build matches the sources, a minute or two when it does not.
compiled: $(BIN)/.installed
	$(BIN)/python scripts/compile

run: compiled
	$(BIN)/gateway serve

check: $(BIN)/.installed
	scripts/check

# The deploy tests' tools (helm, kubectl, promtool, podman and the image test's base): see the script.
deploy-tools: $(BIN)/.installed
	scripts/ensure-deploy-tools

# The quick tests on every core (each e2e test waits on its own processes), then the slow load and timing
# tests alone, so that no other test skews what they measure (one of them runs the benchmark: wrk, nginx).
test: compiled $(NODE_DEPS) deploy-tools
	scripts/ensure-redis
	scripts/ensure-bench-tools
	scripts/check
	$(BIN)/pytest -n auto -m "not slow"
	$(BIN)/pytest -m slow

bench: compiled
	scripts/ensure-bench-tools
	$(BIN)/python bench/run.py

lock:
	scripts/lock

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache

# Two commands matter on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INTL_SDK := $(VENV)/intl-en-sdk
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_SDK := tests/node/node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium

.PHONY: demo serve test soak lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	# The intl-en SDK shares the `tencentcloud` package with the CN SDK: keep it apart.
	$(BIN)/pip install --quiet --target $(INTL_SDK) 'tencentcloud-sdk-python-intl-en>=3.0.1200'
	touch $@

# The official Node SDK, from the npm registry, for tests/e2e/test_node_sdk.py.
$(NODE_SDK): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

# Debian's Chromium, which the console's browser tests drive through playwright (playwright
# never downloads a browser here). Installed when we may; otherwise those tests say why they
# skip (and fail under .ci/run).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
	else echo "chromium is not installed (sudo apt-get install chromium): browser tests will skip"; fi

## demo: set up and run the main job on the embedded default (SQLite, one process)
demo: $(STAMP)
	$(BIN)/vulfix demo

## serve: the API server alone
serve: $(STAMP)
	$(BIN)/vulfix serve

## test: set up with the test extras and run the whole suite
test: $(TEST_STAMP) $(NODE_SDK) $(CHROMIUM)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

## soak: the full 60-second soak of tests/e2e/test_soak.py (CI runs it for 20 s)
soak: $(TEST_STAMP)
	VULFIX_SOAK_SECONDS=60 $(BIN)/pytest tests/e2e/test_soak.py -s -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

## bench: the benchmarks (need wrk and taskset); bench/agents.py, bench/agent_http.py, bench/idle.py and bench/replicas.py run apart (minutes each)
bench: $(TEST_STAMP)
	$(BIN)/python bench/wire.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/notifier_waits.py
	$(BIN)/python bench/job_figures.py
	$(BIN)/python bench/agent_routes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules

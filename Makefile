# Sluice: `make run` starts the embedded default with the example app; `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
BACKEND ?= sqlite
SCENARIO ?= core
REFS ?= HEAD~1,HEAD
ROUNDS ?= 3

.PHONY: help browser screenshots run test test-fast lint format dist smoke-package bench bench-ab bench-peers bench-overhead bench-capture bench-console bench-isolation bench-autoscale bench-payloads bench-floors chaos clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# Only pip's progress lines are shown; its status goes around the filter, so a failed
# install stops here instead of being marked installed.
$(STAMP): pyproject.toml
	@echo "Installing Sluice and its dev tools into $(VENV) (once; about half a minute)..."
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@{ $(BIN)/pip install --progress-bar on -e '.[dev]'; echo $$? > $(VENV)/.pip-exit; } \
		| grep -E '^(Collecting|Successfully)' || true
	@test "$$(cat $(VENV)/.pip-exit)" = 0 || { echo "pip install failed: see above"; exit 1; }
	@rm -f $(VENV)/.pip-exit
	@rm -f $(VENV)/.installed-*; touch $@
	@echo "Installed. The sluice command is $(BIN)/sluice (or: source $(BIN)/activate)."

install: $(STAMP)  ## create .venv and install Sluice with its dev tools

run: $(STAMP)  ## start `sluice dev` with the example app on http://127.0.0.1:8420
	cd examples && ../$(BIN)/sluice dev shop:app

browser:  ## Debian's Chromium for the console's browser tests (installed when missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Chromium from Debian's packages for the console's browser tests..."; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }

screenshots: $(STAMP) browser  ## refresh the console screenshots the README shows (docs/images/)
	mkdir -p docs/images && SLUICE_SCREENSHOTS=docs/images $(BIN)/pytest -q tests/browser/test_console.py -k screenshots

test: $(STAMP) browser  ## the whole test suite, SQLite and PostgreSQL (SLUICE_TEST_PG)
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not alone"
	$(BIN)/pytest -q -m alone  # latency bounds: beside another test, its bursts skew one phase

test-fast: $(STAMP)  ## policy, store and integration tests only
	$(BIN)/pytest -q -m "not acceptance"

lint: $(STAMP)  ## ruff and mypy --strict on the package
	$(BIN)/ruff check sluice tests examples bench chaos
	$(BIN)/ruff format --check sluice tests examples bench chaos
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's formatting and fixes
	$(BIN)/ruff format sluice tests examples bench chaos
	$(BIN)/ruff check --fix sluice tests examples bench chaos

dist: $(STAMP)  ## build the wheel and the sdist into dist/
	rm -rf dist && $(BIN)/python -m build --outdir dist

smoke-package: dist  ## install the wheel and the sdist into fresh venvs and try them (slow: downloads)
	sh tests/smoke_package.sh dist $(PYTHON)

bench: $(STAMP)  ## benchmarks (BACKEND=sqlite|postgres); figures go to bench/RESULTS.md
	$(BIN)/python -m bench.run --backend $(BACKEND)

bench-ab: $(STAMP)  ## the hot path of commits back to back (REFS=a,b ROUNDS=3 BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.ab --refs $(REFS) --rounds $(ROUNDS) --backend $(BACKEND)

bench-overhead: $(STAMP)  ## the cost of log capture, a logged line and tracing, per submit and per task (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.overhead --backend $(BACKEND)

bench-capture: $(STAMP)  ## log capture on and off side by side on one server, with an on/on control (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.capture --backend $(BACKEND)

bench-console: $(STAMP)  ## the console's pages with 1,000,000 tasks, and 20 consoles beside the hot path (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.console --backend $(BACKEND)
bench-isolation: $(STAMP)  ## the cost of process isolation per no-op task, next to in-thread (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.isolation --backend $(BACKEND)
bench-autoscale: $(STAMP)  ## 10,000 tasks of 0.5 s on an idle autoscaled pool: bench/autoscale.png (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.autoscale --backend $(BACKEND)

bench-floors: $(STAMP)  ## the physical floors under the figures: a commit, an HTTP round trip, the intake (issue 20 point 9)
	$(BIN)/python -m bench.floors

bench-payloads: $(STAMP)  ## 5,000 tasks of 64 KiB: submit and drain rates, the SQLite WAL's size (BACKEND=sqlite|postgres)
	$(BIN)/python -m bench.payloads --backend $(BACKEND)

bench-peers: $(STAMP)  ## Sluice next to Celery, RQ, Dramatiq, arq, Huey, Taskiq, Procrastinate (SCENARIO=core|fairness): bench/PEERS.md
	$(BIN)/python -m bench.peers.run --scenario $(SCENARIO)

chaos: $(STAMP)  ## crash-safety run (BACKEND=sqlite|postgres): kills server and workers, audits
	$(BIN)/python -m chaos.run --backend $(BACKEND)

clean:  ## remove the venv and local data
	rm -rf $(VENV) dist .sluice examples/.sluice .pytest_cache .mypy_cache .ruff_cache

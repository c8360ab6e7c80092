# Two set-up commands: `make run` (everything, foreground) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint fmt install bench-scale

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY)"; exit 1; }
	$(PY) -m venv $(VENV)

# pyspur is installed without its dependencies: only the web UI's static build in its wheel is used
# (served at /, api/web/ui.py), the package is never imported.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps 'pyspur==0.1.18'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python devstack.py

# Three test processes, each with its own Temporal, PostgreSQL and worker; a file stays in one process
# (module fixtures). Most e2e time is waiting on Temporal, so three share two cores well.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.run $(ARGS)

# Not in `make bench`: seeding a million runs takes minutes (docs/benchmarks.md, "Costs as data grows").
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale $(ARGS)

# The chaos soak (docs/operating.md#chaos-soak): 2 APIs, 2 workers, Temporal and PostgreSQL under mixed
# load while processes are killed and frozen; exits non-zero on any invariant violation.
SOAK_SECONDS ?= 120
SOAK_SEED ?= 1
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m soak --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED)

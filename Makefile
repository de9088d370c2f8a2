# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use and reuses it afterwards.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The product alone (what `make demo` and `make serve` need); STAMP adds the dev extra
# (test, lint and type-check tools) for every other target.
RUNTIME_STAMP := $(VENV)/.runtime-installed

.PHONY: install demo test lint typecheck unit integration serve clean browser screenshots soak mutate deep bench

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/billbridge demo

serve: $(RUNTIME_STAMP)
	$(BIN)/billbridge serve

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

# Browser tests drive Debian's chromium; never a browser a test tool downloads.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (apt-get install -y chromium) for the browser tests"; fi; }

test: lint typecheck browser
	$(BIN)/pytest -q -m "not deep"

# Long property runs (hundreds of examples a variant, on SQLite and PostgreSQL).
deep: $(STAMP)
	$(BIN)/pytest -q -m deep

# Chaos soak on PostgreSQL (BILLBRIDGE_TEST_PG_URL, else the local server): SOAK_SECONDS of
# traffic with kills, an ERP outage and 429 storms, then a three-way reconciliation.
SOAK_SECONDS ?= 300
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/billbridge bench soak

# The standard benchmark set (docs/benchmarks.md): bursts of 20,000 entries on SQLite with
# one and two workers (each with the store's floor under its rows), bench floor, and bench
# ingest at 1,000 webhooks a second for 30 s; one JSON summary in BENCH_OUT. Some minutes.
# The hub's secret key: BILLBRIDGE_SECRET_KEY if set, else a scratch one for the run.
BENCH_OUT ?= bench-summary.json
bench: $(STAMP)
	@dir=$$(mktemp -d) && \
	export BILLBRIDGE_SECRET_KEY="$${BILLBRIDGE_SECRET_KEY:-$$($(BIN)/python -c \
	  'from billbridge.engine.secrets import new_key; print(new_key().decode())')}" && \
	$(BIN)/billbridge bench burst --entries 20000 --workers 1 --json > $$dir/burst_1_worker.json && \
	$(BIN)/billbridge bench burst --entries 20000 --workers 2 --json > $$dir/burst_2_workers.json && \
	$(BIN)/billbridge bench floor --entries 20000 --runs 3 --json > $$dir/floor.json && \
	$(BIN)/billbridge bench ingest --rate 1000 --seconds 30 --json > $$dir/ingest.json && \
	$(BIN)/python -m billbridge.bench.summary $$dir $(BENCH_OUT) && rm -rf $$dir && \
	echo "make bench: figures in $(BENCH_OUT)"

# Mutation testing with mutmut 3 ([tool.mutmut] in pyproject.toml): every mutant lives in a
# copy under ./mutants, src/ is never edited (PYTHONPATH points the tests' subprocesses at that
# copy too). One worker (the machine is shared), SQLite only.
# Without MUTATE_PATHS it resumes: mutants not yet decided, fastest first, until the budget
# runs out. MUTATE_PATHS="src/billbridge/domain src/billbridge/engine/outbox.py" re-tests
# every mutant of those paths (after adding a test, to see its survivors killed).
MUTATE_PATHS   ?=
MUTATE_MINUTES ?= 20
MUTATE_STAMP   := $(VENV)/.mutate-installed
MUTANT_GLOBS   := $(foreach p,$(MUTATE_PATHS),'$(subst /,.,$(patsubst src/%,%,$(basename $(p:/=)))).*')

$(MUTATE_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	@rc=0; env -u BILLBRIDGE_TEST_PG_URL PYTHONPATH=$(CURDIR)/mutants/src timeout --foreground --signal=INT $(MUTATE_MINUTES)m \
	  $(BIN)/mutmut run --max-children 1 $(MUTANT_GLOBS) || rc=$$?; \
	  if [ $$rc = 124 ]; then echo "mutate: stopped after $(MUTATE_MINUTES) min; run again to go on"; \
	  elif [ $$rc != 0 ]; then exit $$rc; fi
	$(BIN)/mutmut export-cicd-stats
	@cat mutants/mutmut-cicd-stats.json
	@echo "survivors (see one with: $(BIN)/mutmut show NAME):"
	@$(BIN)/mutmut results | { grep -v ': not checked$$' || true; }

screenshots: $(STAMP) browser
	$(BIN)/python -m billbridge.demo.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis billbridge.db* mutants

# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use and reuses it afterwards.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit integration serve clean browser screenshots soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/billbridge demo

serve: $(STAMP)
	$(BIN)/billbridge serve

lint: $(STAMP)
	$(BIN)/ruff check src tests

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
	$(BIN)/pytest -q

# Chaos soak on PostgreSQL (BILLBRIDGE_TEST_PG_URL, else the local server): SOAK_SECONDS of
# traffic with kills, an ERP outage and 429 storms, then a three-way reconciliation.
SOAK_SECONDS ?= 300
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/billbridge bench soak

screenshots: $(STAMP) browser
	$(BIN)/python -m billbridge.console.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis billbridge.db*

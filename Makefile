# Two commands: `make run` (demo data + Dagster UI on http://127.0.0.1:3000) and `make test`.
VENV ?= .venv
PYTHON ?= python3
DEMO_DAYS ?= 7
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install run test test-fast lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# dg reads the project from pyproject.toml ([tool.dg]) and runs it in this venv; its services
# log warnings only, runs log what they load and what fails
run: install
	$(VENV)/bin/cdr-workflow demo --days $(DEMO_DAYS)
	CDR_START_DATE=$${CDR_START_DATE:-$$(date -u -d '$(DEMO_DAYS) days ago' +%F)} \
		VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/dg dev -h 127.0.0.1 -p 3000 --log-level warning

lint: install
	$(VENV)/bin/ruff check cdr_workflow tests benchmarks
	$(VENV)/bin/hadolint docker/Dockerfile
	cd $(CURDIR) && VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/dg check defs

test: lint
	$(VENV)/bin/pytest

# the pure core and the Definitions on DuckDB, no servers or browsers (about a minute)
test-fast: install
	$(VENV)/bin/pytest -q -m "not slow and not postgres and not s3 and not iceberg and not browser"

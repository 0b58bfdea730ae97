# Two commands: `make run` (demo data + Dagster UI on http://127.0.0.1:3000) and `make test`.
VENV ?= .venv
PYTHON ?= python3
DEMO_DAYS ?= 7
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install run test lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(VENV)/bin/cdr-workflow demo --days $(DEMO_DAYS)
	CDR_START_DATE=$${CDR_START_DATE:-$$(date -u -d '$(DEMO_DAYS) days ago' +%F)} \
		$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(VENV)/bin/ruff check cdr_workflow tests benchmarks
	$(VENV)/bin/hadolint docker/Dockerfile

test: lint
	$(VENV)/bin/pytest

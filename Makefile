# Two commands for a fresh machine: `make run` (the product, with demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
PORT ?= 8000
HOST ?= 127.0.0.1
QUEUES := ingest,fulfillment,sync,notify,subscriptions

.PHONY: install run test lint migrate demo worker topology clean prometheus-fresh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt ".[dev]"
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(MANAGE) migrate --noinput

# The demo's vendor sandbox (demo/sandbox.py) and its channels are plain http on 127.0.0.1: the
# outbound URL guard lets loopback through only with this, never on by default.
demo run: export INTEGRATIONS_ALLOW_LOOPBACK_HTTP = 1
# The status page links setup_demo prints and the emails carry point at this server.
demo run: export PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)
# The local carrier's tracking simulator at demo speed: a scan every 2 s (setup_demo waits for
# them), and a delivery problem on a fifth of the parcels so the demo shows one.
demo run: export LOCAL_CARRIER_TRACKING_STEP_SECONDS ?= 2
demo run: export LOCAL_CARRIER_EXCEPTION_RATE ?= 0.2

demo: migrate
	$(MANAGE) setup_demo

# Web UI on $(HOST):$(PORT) plus a Celery worker with embedded beat on the filesystem broker
# (var/celery-broker): no services needed. Ctrl-C stops all of it.
# Every process of it (setup_demo, the worker, gunicorn) writes its Prometheus samples into one
# fresh folder, so /metrics and the operations dashboard sum them, the demo's orders included
# (a target-specific variable: the prerequisites demo and migrate get it too).
run: export PROMETHEUS_MULTIPROC_DIR = $(CURDIR)/var/prometheus
run: prometheus-fresh demo
	@$(MANAGE) collectstatic --noinput --verbosity 0
	@set -euo pipefail; \
	$(BIN)/celery -A config worker --beat --queues $(QUEUES) --concurrency 2 \
	  --loglevel INFO --schedule var/celerybeat-schedule >var/worker.log 2>&1 & \
	worker=$$!; \
	trap 'echo; echo "Stopping worker..."; kill -TERM $$worker 2>/dev/null || true; wait $$worker 2>/dev/null || true' EXIT; \
	echo ""; \
	echo "  Back office:  http://$(HOST):$(PORT)/admin/   (users and passwords above)"; \
	echo "  Review workspace (reviewer):   http://$(HOST):$(PORT)/admin/work/reviews/"; \
	echo "  Incidents (cs, ops):           http://$(HOST):$(PORT)/admin/work/incidents/"; \
	echo "  Operations dashboard (ops):    http://$(HOST):$(PORT)/admin/work/dashboard/"; \
	echo "  KPIs (ops, finance):           http://$(HOST):$(PORT)/admin/work/kpis/"; \
	echo "  Latest weekly summary:         http://$(HOST):$(PORT)/admin/work/summaries/latest/"; \
	echo "  Finance period close:          http://$(HOST):$(PORT)/admin/reconciliation/finance/period/"; \
	echo "  API docs:     http://$(HOST):$(PORT)/api/docs/"; \
	echo "  Health:       http://$(HOST):$(PORT)/healthz  http://$(HOST):$(PORT)/readyz"; \
	echo "  Incidents:    http://$(HOST):$(PORT)/admin/work/incidents/   (user cs or ops)"; \
	echo "  Worker + beat log: var/worker.log      Ctrl-C stops everything."; \
	echo ""; \
	$(BIN)/gunicorn config.wsgi --bind $(HOST):$(PORT) --workers 2 --access-logfile - \
	  --error-logfile - --graceful-timeout 5

prometheus-fresh:
	@rm -rf var/prometheus && mkdir -p var/prometheus

worker: install
	$(BIN)/celery -A config worker --beat --queues $(QUEUES) --loglevel INFO

# The one-machine production topology (Procfile; docs/deployment.md, "One machine"): gunicorn,
# one Celery worker per queue and beat under honcho, on the PostgreSQL and Redis the environment
# names. Sizes come from the environment too (WEB_WORKERS, INGEST_CONCURRENCY, ...).
topology: install
	@test -n "$$DATABASE_URL" || { echo "Set DATABASE_URL=postgres://... (PostgreSQL)"; exit 2; }
	@test -n "$$CELERY_BROKER_URL" || { echo "Set CELERY_BROKER_URL=redis://... (Redis)"; exit 2; }
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --procfile Procfile --port $(PORT)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis .mypy_cache

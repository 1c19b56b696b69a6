# Parley: `make run` serves the app on http://127.0.0.1:8000, `make test` runs every test.
# Both start from a fresh checkout: they create .venv, install the Python and npm packages,
# build the front-end assets and migrate the database. Stamp files keep repeated runs fast.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments for both pytest runs, e.g. make test PYTEST_ARGS="-x -k room"
PYTEST_ARGS ?=

export PYTHON

.PHONY: help run test test-unit test-e2e faults fuzz setup setup-test assets migrate lint format clean \
	bench bench-quick lock audit check-deploy checks schema schema-check \
	messages translations translations-check

help:
	@echo "make run    install everything, migrate, serve on http://$(HOST):$(PORT)"
	@echo "make test   install everything (with test tools), run unit, end-to-end and fault tests"
	@echo "make faults the fault-injection suite alone (figures in faults/results/latest.json)"
	@echo "make fuzz   schemathesis against a real server, as users A and B (FUZZ_SEED, FUZZ_EXAMPLES)"
	@echo "make lint   ruff check + ruff format --check"
	@echo "make checks lint + check --deploy with production values + audit (lock in sync, known CVEs)"
	@echo "make schema regenerate docs/openapi.yaml (the API's OpenAPI schema, committed)"
	@echo "make lock   recompile requirements/*.txt from pyproject.toml"
	@echo "make translations  extract the marked strings into locale/*/django.po (needs GNU gettext)"
	@echo "make bench  benchmark T0/T1/T2 (needs Redis + PostgreSQL, 15-20 min); bench-quick: ~3 min"
	@echo "make clean  remove .venv, node_modules, built assets and caches"

# --- Python -------------------------------------------------------------------------------
$(PY):
	@bash scripts/check-prereqs.sh python
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "Could not create $(VENV). Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

# The Python packages come from the lock files, with hashes: a fresh machine installs exactly
# what CI tested. requirements/app.txt is the runtime; requirements/dev.txt adds the test, bench
# and tool extras. Both are compiled from pyproject.toml by `make lock`.
PIP_INSTALL := $(PIP) install --quiet --disable-pip-version-check --require-hashes --no-deps

$(VENV)/.installed: requirements/app.txt | $(PY)
	$(PIP_INSTALL) -r requirements/app.txt
	@touch $@

$(VENV)/.installed-test: requirements/dev.txt $(VENV)/.installed
	$(PIP_INSTALL) -r requirements/dev.txt
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	@touch $@

# --- npm + assets -----------------------------------------------------------------------------
node_modules/.installed: package.json package-lock.json
	@bash scripts/check-prereqs.sh node
	npm ci --no-audit --no-fund
	@touch $@

# Always rebuilt (about a second): Tailwind scans every template for class names.
assets: node_modules/.installed
	npm run --silent build

# --- Translations (scripts/translations.py) -------------------------------------------------
# The .mo files are compiled with polib (pure Python, a locked dependency): no GNU gettext needed
# to run or test Parley. They are build outputs (.gitignore); each is rebuilt when its .po changes.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
MO_FILES := $(PO_FILES:.po=.mo)

locale/%.mo: locale/%.po $(VENV)/.installed
	$(PY) scripts/translations.py compile

messages: $(MO_FILES)

# Extract the marked strings into the catalogues (then translate what it lists). Needs xgettext.
translations: $(VENV)/.installed
	$(PY) scripts/translations.py update

# CI: fails when a string is missing, untranslated, fuzzy or obsolete in a catalogue.
translations-check: $(VENV)/.installed
	$(PY) scripts/translations.py check

# --- Setup ---------------------------------------------------------------------------------------
setup: $(VENV)/.installed assets messages
setup-test: $(VENV)/.installed-test assets messages

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput

# --- Main targets ----------------------------------------------------------------------------
run:
	@bash scripts/check-prereqs.sh python node
	@$(MAKE) --no-print-directory setup migrate
	@echo "Parley: http://$(HOST):$(PORT)/  (Ctrl+C stops the server)"
	$(PY) manage.py runserver $(HOST):$(PORT)

test:
	@bash scripts/check-prereqs.sh python node chromium
	@$(MAKE) --no-print-directory setup-test
	bash scripts/run-tests.sh $(PYTEST_ARGS)

test-unit: setup-test
	$(VENV)/bin/pytest -m "not e2e and not faults and not fuzz" $(PYTEST_ARGS)

test-e2e: setup-test
	@bash scripts/check-prereqs.sh chromium
	$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

# Fault injection: private Redis + 3 daphne processes, killed during traffic (faults/).
faults: setup-test
	$(VENV)/bin/pytest -m faults -s $(PYTEST_ARGS)

# The API against its OpenAPI schema: schemathesis (examples, coverage, fuzzing, stateful through
# the schema's links) on a real server as two users, and user B on user A's private objects
# (fuzz/). A fixed seed and budget (FUZZ_SEED, FUZZ_EXAMPLES): a few minutes.
fuzz: setup-test
	$(VENV)/bin/pytest -m fuzz -s $(PYTEST_ARGS)

# --- Benchmarks (bench/README.md) ------------------------------------------------------------
# The load generator runs on core 1, the servers on core 0 (bench/servers.py). Redis on
# 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 must answer (BENCH_REDIS_URL,
# BENCH_POSTGRES_URL override them). Results: bench/results/latest.{json,md}.
BENCH_ARGS ?=
BENCH_CPU := $(shell [ "$$(nproc)" -ge 2 ] && echo "taskset -c 1")

bench: $(VENV)/.installed-bench
	$(BENCH_CPU) $(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-bench
	$(BENCH_CPU) $(PY) -m bench.run --quick $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Recompile both lock files after a change to pyproject.toml (needs the package index).
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: $(VENV)/.installed-test
	$(PIP_COMPILE) --extra test --extra bench --extra tools -o requirements/dev.txt pyproject.toml
	$(PIP_COMPILE) -c requirements/dev.txt -o requirements/app.txt pyproject.toml

# The lock matches pyproject.toml, and no locked version has a known vulnerability.
audit: $(VENV)/.installed-test
	$(PY) scripts/audit.py

# The OpenAPI schema, committed so an API change shows in review; a test fails when it is stale.
# --validate --fail-on-warn: every view must be describable without guessing.
schema: $(VENV)/.installed
	$(PY) manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

# Django's deployment checks with production values (a throwaway key, DEBUG off, HTTPS origin).
check-deploy: $(VENV)/.installed
	DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	DJANGO_DEBUG=0 DJANGO_ALLOWED_HOSTS=chat.example.com \
	DJANGO_CSRF_TRUSTED_ORIGINS=https://chat.example.com \
	$(PY) manage.py check --deploy --fail-level WARNING

# What CI runs before the tests: lint, deployment checks, supply chain, the schema and the
# translations (scripts/translations.py check needs GNU gettext: .ci/run installs it).
checks: lint check-deploy audit schema-check translations-check

# CI: the schema validates without a warning (the test suite also compares it to docs/openapi.yaml).
schema-check: $(VENV)/.installed
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) node_modules static/dist static/vendor staticfiles build *.egg-info \
	  .pytest_cache .ruff_cache test-results e2e/artifacts
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

# Pulse: `make run` runs the pipeline end to end on the local stack, `make test` runs the tests.
# Both set up everything they need (virtualenv, pinned install, services) on a fresh machine.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
UV_VERSION  := 0.13.9
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
export NO_PROXY := 127.0.0.1,localhost

ANY_DAY_TESTS ?= tests/policy/test_one_clock.py tests/unit tests/e2e tests/quality tests/alerts/test_alerts.py tests/export/test_export_dag.py tests/archive/test_retention.py
ANY_DAYS ?= 2026-12-31 23:58:00,2027-02-28 23:58:00

.PHONY: run test test-any-day bench dictionary settings psql stop status lint install migrate clean

# The pinned set first, then the project itself, editable and without dependencies (the pinned set stays as it
# is): that registers Pulse's provider entry point, so Airflow knows its connection types (docs/connections.md).
# Build isolation is off so the build uses the pinned setuptools instead of fetching one.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --no-build-isolation --reinstall-package pulse -e .
	touch $@

install: $(VENV)/.installed ## create the virtualenv, install the pinned dependencies and Pulse (editable, as an Airflow provider)

run: install ## bring the stack up, run each DAG once, keep the UI up until Ctrl-C / make stop (ONCE=1: exit after the cycle; DAGS="a b": only those)
	$(PY) -m dev.run_cycle $(if $(ONCE),--once,) $(if $(DAGS),--dags $(DAGS),)

test: install ## run the whole test suite in one pytest process
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast lane: every test that needs none of the services the suite starts (PostgreSQL, Airflow's metadata DB,
# the simulator, moto, a live stack). tests/lanes.py marks the others `slow` from the fixtures they use, so a new
# test directory is in one lane or the other, never in neither. PULSE_FAST_LANE: property tests run a tenth of
# their examples (tests/unit/test_params.py); make test runs them all.
.PHONY: test-fast
test-fast: install ## the fast lane: unit, policy, contract and other tests that start no service (tests/lanes.py)
	PULSE_FAST_LANE=1 $(PY) -m pytest -p no:cacheprovider -q -m "not slow" $(PYTEST_ARGS)

# No test may depend on the day it runs: the clock-sensitive tests with the machine's clock (every process, PostgreSQL
# included, through libfaketime from Debian) started just before a year end and a month end, so the run crosses them.
test-any-day: install ## the clock-sensitive tests on other days (ANY_DAYS="YYYY-MM-DD hh:mm:ss,..." and ANY_DAY_TESTS pick)
	command -v faketime >/dev/null || (apt-get update -q && apt-get install -y -q faketime)
	days='$(ANY_DAYS)'; IFS=,; for day in $$days; do echo "== the machine's clock starts at $$day UTC"; \
	  TZ=UTC faketime -f "@$$day" $(PY) -m pytest -p no:cacheprovider -q $(ANY_DAY_TESTS) $(PYTEST_ARGS) || exit 1; done

BENCHES ?= loader enrich dedup archive
bench: install ## benchmarks, methods side by side in one run (BENCHES="loader" picks some; BENCH_ARGS=... passes flags)
	for b in $(BENCHES); do $(PY) -m bench.$$b $(BENCH_ARGS) || exit 1; done

psql: install ## psql on the local warehouse (SQL="..." runs one statement; ROLE=analyst reads as an analyst)
	$(PY) -m dev.stack psql $(if $(SQL),--sql "$(SQL)",) $(if $(ROLE),--role $(ROLE),)

dictionary: install ## regenerate docs/data_dictionary.md from the migrated local warehouse
	$(PY) -m dev.stack dictionary

settings: install ## rewrite the sources' connections and pools in airflow_settings.yaml from their specs
	PYTHONPATH=plugins $(PY) -m pulse.sources.settings

migrate: install ## apply the warehouse migrations to the local stack's warehouse
	$(PY) -m dev.stack pg-up

stop: install ## stop every service of the local stack, a running make run too; says what each one did
	$(PY) -m dev.stack down

status: install
	$(PY) -m dev.stack status

lint: install
	$(VENV)/bin/ruff check dags plugins dev tests include bench
	$(VENV)/bin/ruff format --check dags plugins dev tests include bench

lock: ## re-pin requirements.lock from requirements-dev.txt (Python 3.11)
	$(VENV)/bin/uv pip compile requirements-dev.txt --python-version 3.11 -o requirements.lock

clean: stop
	rm -rf .local

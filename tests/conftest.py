"""Session fixtures: a throw-away PostgreSQL 15, the source simulator, a Slack receiver and Airflow's DB.

Everything real: the warehouse is a PostgreSQL cluster started from the machine's binaries (as the
``postgres`` user when we are root) with the project's migrations applied; hooks talk HTTP to the simulator;
Slack notifiers post HTTP to the receiver. Airflow runs in-process (``dag.test()``) on a SQLite metadata DB.

Airflow reads its configuration from the environment when first imported, so the environment is set here,
at import time, before any test module imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION_DIR = Path(tempfile.mkdtemp(prefix="pulse-test-"))
SESSION_DIR.chmod(0o755)  # the postgres user must be able to enter it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


os.environ.update(
    {
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow.db'}",
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",
        "PULSE_STATE_DIR": str(SESSION_DIR / "state"),
        "PULSE_PG_PORT": str(_free_port()),
        "PULSE_PSEUDONYM_KEY": "test-pseudonym-key",
        # The pipeline's clock, pinned just after the simulator's: "future" and "beyond reach" answers
        # stay the same whatever day the suite runs.
        "PULSE_NOW": "2026-11-28T12:05:00+00:00",
        "PULSE_SOURCES_FILE": str(ROOT / "tests" / "data" / "sources.yaml"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
)
os.environ.pop("PULSE_WAREHOUSE_DSN", None)
for key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[key]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

# Property-based tests (hypothesis) are deterministic here: the same examples on every run and machine, no
# example database written into the checkout, no per-example deadline on a loaded 2-core machine.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("pulse", database=None, derandomize=True, deadline=None)
_hypothesis_settings.load_profile("pulse")

from pulse.sources.spec import all_sources  # noqa: E402

#: Every source of the repository, from the specs (pulse.sources.<source>.SPEC).
SOURCE_NAMES: tuple[str, ...] = tuple(spec.name for spec in all_sources())

#: The simulator's fixed clock in tests, and the hour before it: the window most tests ingest.
SIM_NOW = "2026-11-28T12:00:00+00:00"
WINDOW = ("2026-11-28T11:00:00+00:00", "2026-11-28T12:00:00+00:00")


def set_connection(conn_id: str, conn: dict[str, Any]) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)


@pytest.fixture(scope="session")
def warehouse() -> Iterator[dict[str, Any]]:
    """A migrated warehouse in a throw-away PostgreSQL cluster; yields psycopg connect kwargs."""
    from dev import stack

    stack.pg_up()
    stack.migrate_warehouse()
    dsn = stack.warehouse_dsn()
    set_connection(
        "warehouse_default",
        {
            "conn_type": "postgres",
            "host": dsn["host"],
            "port": dsn["port"],
            "login": dsn["user"],
            "password": dsn["password"],
            "schema": dsn["dbname"],
        },
    )
    yield dsn
    stack.pg_down()
    data = stack.pg_data_dir()
    if not str(data).startswith(str(SESSION_DIR)):
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def db(warehouse: dict[str, Any]) -> Iterator[Any]:
    """An autocommit connection to the warehouse, for assertions."""
    import psycopg

    with psycopg.connect(**warehouse, autocommit=True) as conn:
        yield conn


#: The trends DAG's tables (migration 0017); truncate_warehouse empties them with the rest.
TREND_TABLES = (
    "analytics.trend_source_hours, analytics.trend_series, analytics.trend_series_hourly, "
    "analytics.trend_spikes, analytics.trend_forecasts, analytics.ticker_entities, ops.trends_state"
)


def truncate_warehouse(conn: Any) -> None:
    conn.execute(
        "TRUNCATE raw.api_responses, core.documents, core.market_bars, core.weather_observations, "
        "core.github_repo_snapshots, quality.quarantine, quality.source_health, ops.ingest_runs, ops.coverage, "
        "ops.api_budget, enriched.document_features, enriched.entity_mentions, enriched.places, "
        "enriched.enrichment_errors, enriched.component_versions, enriched.document_fingerprints, "
        "enriched.minhash_bands, enriched.minhash_signatures, enriched.duplicate_clusters, quality.check_results, "
        "quality.window_audits, quality.publish_state, ops.alert_log, ops.alert_events, ops.archives, ops.exports, "
        f"ops.webhook_deliveries, quality.hour_audits, ops.api_budget_limits, {TREND_TABLES} RESTART IDENTITY"
    )


def publish_everything(conn: Any) -> None:
    """Publish every source's data (as if every window had passed its audit): for tests of the views' content.

    tests/quality/test_publish.py covers the audit that moves the horizon for real.
    """
    sources = list(SOURCE_NAMES)
    conn.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id)"
        " SELECT s, 'infinity', 'tests' FROM unnest(%s::text[]) s"
        " ON CONFLICT (source) DO UPDATE SET published_until = 'infinity'",
        (sources,),
    )
    audit_hours(conn, sources)


def audit_hours(conn: Any, sources: list[str]) -> None:
    """Mark every hour holding rows of ``sources`` as audited and passed now (``quality.hour_audits``), as a
    quality run would: with a horizon past them, every row written so far is published."""
    conn.execute(
        """
        INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)
        SELECT DISTINCT source, date_bin('1 hour', t, timestamptz '2000-01-01 00:00+00'), now(), now(), 'tests'
          FROM (SELECT source, created_at AS t FROM core.documents
                UNION ALL SELECT source, ts FROM core.market_bars
                UNION ALL SELECT source, coalesce(issued_at, valid_at) FROM core.weather_observations
                UNION ALL SELECT source, snapshot_at FROM core.github_repo_snapshots
                UNION ALL SELECT source, created_at FROM enriched.document_features) r
         WHERE source = ANY(%s)
        ON CONFLICT (source, hour) DO UPDATE SET audited_at = now(), published_at = now()
        """,
        (sources,),
    )


@pytest.fixture(scope="session")
def simulator() -> Iterator[Any]:
    """The source simulator on a free loopback port, clock fixed at :data:`SIM_NOW`."""
    from dev.simulator import SimulatorServer

    sim = SimulatorServer(host="127.0.0.1", port=0, seed=42, now=SIM_NOW)
    sim.start()
    # Every declared source's connection, as dev/stack.py makes them (from the specs), with fast retries.
    from dev import stack

    fast = {"timeout": 5, "max_attempts": 4, "backoff": 0.2}
    for conn_id, conn in stack.source_connections(sim.url, fast).items():
        set_connection(conn_id, conn)
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator: Any) -> Iterator[Any]:
    """The simulator, reset to a clean state (no faults, counters zero) for one test."""
    simulator.reset()
    simulator.set_now(SIM_NOW)
    simulator.configure({"reddit": {"bad_items_ratio": 0.0, "posts_per_hour": 12, "comments_per_hour": 20}})
    yield simulator
    simulator.reset()


@pytest.fixture(scope="session")
def slack() -> Iterator[Any]:
    """The Slack webhook receiver; connections ``slack_failures|quality|trends`` post to ``/T0/B0/<ROUTE>``.

    Alert deduplication is off (window 0) unless a test sets ``PULSE_ALERT_DEDUP_MINUTES`` itself.
    """
    from dev.slack_receiver import SlackReceiver

    receiver = SlackReceiver().start()
    for route in ("failures", "quality", "trends"):
        set_connection(
            f"slack_{route}",
            {"conn_type": "slackwebhook", "host": receiver.url, "password": f"T0/B0/{route.upper()}"},
        )
    os.environ.setdefault("PULSE_ALERT_DEDUP_MINUTES", "0")
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server over real HTTP; connection ``pulse_s3`` points at it and bucket ``pulse-test`` exists.

    Yields ``{"url": endpoint, "bucket": name, "conn_id": "pulse_s3"}``.
    """
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=url, **creds).create_bucket(Bucket="pulse-test")
    set_connection(
        "pulse_s3",
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": url, "region_name": "us-east-1"},
        },
    )
    yield {"url": url, "bucket": "pulse-test", "conn_id": "pulse_s3"}
    server.stop()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata DB (SQLite), migrated once per session."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="session")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def dag_test(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` like a manual run (no logical date, run_after on the pipeline clock), working around an
    Airflow 3.3.2 bug.

    ``dag.test()`` deserialises the DAG without giving its Deadline Alerts their database ids, so a run that
    succeeds crashes in ``DagRun.update_state`` (``DeadlineAlertModel.get_by_id`` receives the encoded alert:
    "'dict' object has no attribute 'hex'"). Deadlines never fire under ``dag.test()`` anyway (AIRFLOW3.md §1),
    so they are detached for the call; the policy tests check them, the local stack fires them.
    """
    import copy

    kwargs.setdefault("logical_date", None)
    # Airflow stamps a manual run's run_after with its own clock (the machine's); the pipeline reads the
    # pinned one. Give the run a run_after on the pipeline clock, as the scheduler would on the day PULSE_NOW
    # names, so no window depends on the day the suite runs (manual run ids carry a random suffix: no clash).
    if "run_after" not in kwargs:
        from pulse.windows import utcnow

        kwargs["run_after"] = utcnow()
    saved, dag.deadline = dag.deadline, None
    # dag.test() resolves run_conf into the DAG's own Param objects, so one run's conf would leak into the
    # next in-process run: restore them afterwards.
    # Each task holds its own copy of the params too.
    saved_params = copy.deepcopy(dag.params)
    saved_task_params = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
    try:
        return dag.test(**kwargs)
    finally:
        dag.deadline = saved
        dag.params = saved_params
        for task in dag.tasks:
            task.params = saved_task_params[task.task_id]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)

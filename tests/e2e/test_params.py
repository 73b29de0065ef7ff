"""Bad params of every DAG, through real runs (``dag.test()``), the real warehouse and the simulator.

Two layers (pulse/params.py): the Params' JSON schema refuses a malformed conf when the run is created (Airflow
3.3.2 validates conf in ``create_dagrun``: the UI form, REST and CLI answer 400 / an error, ``dag.test`` raises
``ParamValidationError``); what a schema cannot see (inverted windows, too many hours, a typo'd key, a day that
has not ended...) reaches the task, which fails at once: one try, no retry, the error naming the param (read
here in the task-failure alert the on-call person gets). Bad params never count against a source's circuit
breaker; an open breaker shows as skipped ``extract`` and ``load``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SOURCE_NAMES, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

INVERTED = {"window_start": WINDOW[1], "window_end": WINDOW[0]}
INGEST_DAGS = [f"ingest_{name}" for name in SOURCE_NAMES]


@pytest.fixture
def env(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, db: Any) -> Any:
    truncate_warehouse(db)
    slack.clear()
    return dagbag


def fails_at_once(dr: Any, task_id: str, slack: Any, *named: str) -> str:
    """The run failed because ``task_id`` failed on its first and only try; returns the alert's text."""
    states = {ti.task_id: (ti.state, ti.try_number) for ti in dr.get_task_instances()}
    assert dr.state == "failed", states
    assert states[task_id] == ("failed", 1), f"{task_id} must fail at once, without a retry: {states}"
    alerts = [t for t in slack.texts("failures") if "Task failed" in t and f".{task_id}`" in t]
    assert len(alerts) == 1, slack.texts()
    for text in named:
        assert text in alerts[0], alerts[0]
    return alerts[0]


def breaker(db: Any, source: str) -> tuple[str, int]:
    row = db.execute(
        "SELECT state, consecutive_failures FROM quality.source_health WHERE source = %s", (source,)
    ).fetchone()
    return (row[0], row[1]) if row else ("closed", 0)


# --- runs whose task refuses the params --------------------------------------------------------------------


@pytest.mark.parametrize("dag_id", INGEST_DAGS)
def test_an_inverted_window_fails_the_ingest_run_at_once_and_spares_the_breaker(
    env: Any, db: Any, sim: Any, slack: Any, dag_id: str
) -> None:
    dr = dag_test(env.dags[dag_id], run_conf=INVERTED)
    fails_at_once(dr, "extract", slack, "BadParam", "window_start", "is not before window_end")
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()}["load"] == "upstream_failed"
    source = dag_id.removeprefix("ingest_")
    assert breaker(db, source) == ("closed", 0), "a user's bad params are not a source failure"
    assert sim.stats()[source]["requests"] == 0, "no API call for a run with bad params"
    assert db.execute("SELECT count(*) FROM raw.api_responses").fetchone()[0] == 0


def test_a_misspelt_param_fails_instead_of_running_the_default_window(env: Any, slack: Any) -> None:
    dr = dag_test(env.dags["ingest_reddit"], run_conf={"window_strat": WINDOW[0], "window_end": WINDOW[1]})
    fails_at_once(dr, "extract", slack, "window_strat: not a param of this DAG")


def test_replay_refuses_an_inverted_window(env: Any, slack: Any) -> None:
    dr = dag_test(env.dags["replay_quarantine"], run_conf={"source": "reddit", **INVERTED})
    fails_at_once(dr, "replay", slack, "window_start", "inverted")


def test_replay_refuses_a_window_years_ahead(env: Any, slack: Any) -> None:
    conf = {"source": "reddit", "window_start": WINDOW[0], "window_end": "9999-12-31T00:00:00+00:00"}
    dr = dag_test(env.dags["replay_quarantine"], run_conf=conf)
    fails_at_once(
        dr, "replay", slack, "window_end: 9999-12-31T00:00:00+00:00 is after", "leave window_end unset"
    )


def test_quality_refuses_ten_years_of_audits(env: Any, db: Any, slack: Any) -> None:
    conf = {"window_start": "2016-11-28T12:00:00+00:00", "window_end": WINDOW[1]}
    dr = dag_test(env.dags["quality"], run_conf=conf)
    fails_at_once(dr, "audit_and_publish", slack, "87,648 hours", "at most 168 hours")
    assert db.execute("SELECT count(*) FROM quality.window_audits").fetchone()[0] == 0


def test_quality_refuses_to_release_an_inverted_window(env: Any, db: Any, slack: Any) -> None:
    conf = {**INVERTED, "release": True, "released_by": "on-call", "reason": "checked by hand"}
    dr = dag_test(env.dags["quality"], run_conf=conf)
    fails_at_once(dr, "audit_and_publish", slack, "window_start", "inverted")
    assert db.execute("SELECT count(*) FROM quality.window_audits").fetchone()[0] == 0


def test_quality_refuses_a_window_off_the_hour(env: Any, slack: Any) -> None:
    conf = {"window_start": "2026-11-28T11:30:00+00:00", "window_end": WINDOW[1]}
    dr = dag_test(env.dags["quality"], run_conf=conf)
    fails_at_once(dr, "audit_and_publish", slack, "window_start", "not a whole UTC hour")


def test_retention_refuses_a_misspelt_hot_period(env: Any, db: Any, slack: Any) -> None:
    dr = dag_test(env.dags["retention"], run_conf={"documents_day": 30})
    fails_at_once(dr, "plan", slack, "documents_day: not a param of this DAG")
    assert db.execute("SELECT count(*) FROM ops.archives").fetchone()[0] == 0


def test_restore_refuses_a_period_that_is_not_a_month(env: Any, slack: Any) -> None:
    conf = {"table": "core.documents", "period": "2026-01-15", "keep_days": 7}
    dr = dag_test(env.dags["restore_archive"], run_conf=conf)
    fails_at_once(dr, "restore", slack, "period", "archived per month", "2026-01-01")


def test_export_refuses_a_day_that_has_not_ended(env: Any, slack: Any) -> None:
    dr = dag_test(env.dags["export"], run_conf={"day": "2026-11-28"})  # the pipeline clock's today
    fails_at_once(dr, "export_marts", slack, "day: 2026-11-28 has not ended yet")


@pytest.mark.parametrize(
    ("dag_id", "task_id", "conf"),
    [
        ("enrich", "enrich", {"window_start": WINDOW[0], "window_end": WINDOW[1]}),
        ("alert_digest", "post_digest", {"since": "2026-11-27"}),
        ("warehouse_maintenance", "ensure_partitions", {"months_ahead": 12}),
    ],
)
def test_dags_without_params_refuse_conf(env: Any, slack: Any, dag_id: str, task_id: str, conf: Any) -> None:
    dr = dag_test(env.dags[dag_id], run_conf=conf)
    fails_at_once(dr, task_id, slack, f"{next(iter(conf))}", "not a param of this DAG (it takes none)")


# --- conf the Params' schema refuses when the run is created ---------------------------------------------------


@pytest.mark.parametrize(
    ("dag_id", "conf", "param"),
    [
        ("ingest_reddit", {"window_start": "2026-11-28 11:00", "window_end": WINDOW[1]}, "window_start"),
        ("ingest_github", {"window_start": "2026-11-28T11:00:00", "window_end": WINDOW[1]}, "window_start"),
        ("quality", {"window_start": "2026-13-01T00:00:00Z", "window_end": WINDOW[1]}, "window_start"),
        ("quality", {"source": "twitter"}, "source"),
        ("replay_quarantine", {"source": "myspace"}, "source"),
        ("replay_quarantine", {"source": "reddit", "reason_codes": ["text_to_large"]}, "reason_codes"),
        (
            "replay_quarantine",
            {"source": "reddit", "reason_codes": ["missing_id", "missing_id"]},
            "reason_codes",
        ),
        ("retention", {"documents_days": 10**12}, "documents_days"),
        ("retention", {"raw_days": 0}, "raw_days"),
        ("restore_archive", {"table": "core.documents", "period": "2026-02-30"}, "period"),
        ("restore_archive", {"table": "core.documents", "keep_days": 10**9}, "keep_days"),
        ("export", {"day": "yesterday"}, "day"),
        ("export", {"marts": ["weekly"]}, "marts"),
    ],
)
def test_the_trigger_refuses_conf_the_form_would_not_allow(
    env: Any, dag_id: str, conf: Any, param: str
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match=f"Invalid input for param {param}"):
        dag_test(env.dags[dag_id], run_conf=conf)


# --- the circuit breaker ---------------------------------------------------------------------------------------


def test_three_runs_with_bad_params_leave_the_breaker_closed_and_the_next_run_loads(
    env: Any, db: Any, slack: Any
) -> None:
    dag = env.dags["ingest_reddit"]
    for _ in range(
        3
    ):  # as many as open the circuit when the source fails (tests/data/sources.yaml: default 3)
        assert dag_test(dag, run_conf=INVERTED).state == "failed"
    assert breaker(db, "reddit") == ("closed", 0)
    assert not [t for t in slack.texts() if "Circuit opened" in t]

    dr = dag_test(dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})
    assert dr.state == "success"
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {
        "warehouse_ready": "success",
        "extract": "success",
        "load": "success",
    }
    assert db.execute("SELECT count(*) FROM core.documents WHERE source = 'reddit'").fetchone()[0] > 0


def test_an_open_breaker_shows_skipped_tasks_and_bad_params_still_fail(env: Any, db: Any, sim: Any) -> None:
    from pulse.windows import utcnow

    db.execute(
        "INSERT INTO quality.source_health (source, state, consecutive_failures, opened_at, last_failure)"
        " VALUES ('reddit', 'open', 3, %s, 'PageFetchError: HTTP 503')",
        (utcnow(),),  # opened just now on the pipeline clock: the cool-down runs
    )
    dag = env.dags["ingest_reddit"]
    dr = dag_test(dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert {t: ti.state for t, ti in tis.items()} == {
        "warehouse_ready": "success",
        "extract": "skipped",
        "load": "skipped",
    }
    assert tis["extract"].try_number == 1
    # Airflow has no "skipped" run state: a run whose leaves all skipped is marked success
    # (DagRun.update_state, State.success_states = {success, skipped}); the task states tell the truth.
    assert dr.state == "success"
    assert sim.stats()["reddit"]["requests"] == 0
    assert db.execute("SELECT count(*) FROM core.documents").fetchone()[0] == 0
    assert breaker(db, "reddit") == ("open", 3)

    # The user's own mistake is reported even while the source is shut off, and counts for nothing.
    dr = dag_test(dag, run_conf=INVERTED)
    assert dr.state == "failed"
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()}["extract"] == "failed"
    assert breaker(db, "reddit") == ("open", 3)


def test_breaker_and_budget_run_on_the_pipeline_clock(env: Any, db: Any, warehouse: Any) -> None:
    """Both default to pulse.windows.utcnow() (PULSE_NOW in tests), not the machine's clock."""
    import psycopg

    from pulse.breaker import Breaker, BreakerSettings
    from pulse.budget import Budget
    from pulse.windows import utcnow

    now = utcnow()
    with psycopg.connect(**warehouse) as conn:
        assert Budget(conn, "github", ((3600, 5000),)).acquire().allowed
        Breaker(conn, "github", BreakerSettings()).record_failure("PageFetchError: HTTP 503")
    bucket = db.execute("SELECT bucket_start FROM ops.api_budget WHERE source = 'github'").fetchone()[0]
    assert bucket == now.replace(minute=0, second=0, microsecond=0)
    failed_at = db.execute("SELECT last_failure_at FROM quality.source_health WHERE source = 'github'")
    assert failed_at.fetchone()[0] == now

"""Slack alerts arrive at the local receiver over real HTTP: content, routing, deduplication, digest.

The live stack (scheduler, dag-processor, triggerer) firing the DAG-level and Deadline callbacks is covered in
tests/stack/test_live_alerts.py; here the same notifiers run under dag.test() and the triggerer's own
CallbackTrigger.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.alerts import Alert, PulseSlackNotifier, error_shape, post_alert
from tests.conftest import WINDOW, dag_test

pytestmark = pytest.mark.e2e


@pytest.fixture
def alerts(warehouse: Any, db: Any, slack: Any, airflow_db: None) -> Any:
    db.execute("TRUNCATE ops.alert_log, ops.alert_events RESTART IDENTITY")
    slack.clear()
    yield slack
    db.execute("TRUNCATE ops.alert_log, ops.alert_events RESTART IDENTITY")


def _run_probe(dagbag: Any, window: bool = True) -> Any:
    """A real DAG failing at once: quality asked to release held hours without saying who and why."""
    conf: dict[str, Any] = {"release": True}
    if window:
        conf.update(window_start=WINDOW[0], window_end=WINDOW[1])
    return dag_test(dagbag.dags["quality"], run_conf=conf)


def test_task_and_dag_failures_name_dag_run_window_error_and_link(alerts: Any, db: Any, dagbag: Any) -> None:
    dr = _run_probe(dagbag)
    assert dr.state == "failed"
    failures = alerts.texts("failures")
    task_msg = [t for t in failures if "Task failed" in t]
    dag_msg = [t for t in failures if "DAG run failed" in t]
    assert len(task_msg) == 1 and len(dag_msg) == 1, failures
    t = task_msg[0]
    assert "`quality.audit_and_publish`" in t and f"`{dr.run_id}`" in t
    assert "2026-11-28 11:00 UTC → 2026-11-28 12:00 UTC" in t
    assert "AirflowFailException: release needs released_by and reason" in t
    assert "/dags/quality/runs/" in t and "|Open the run in Airflow>" in t and "|Task log>" in t
    d = dag_msg[0]
    assert "`quality`" in d and f"`{dr.run_id}`" in d and "*Reason*" in d
    assert "2026-11-28 11:00 UTC → 2026-11-28 12:00 UTC" in d and "/dags/quality/runs/" in d
    assert not alerts.texts("quality") and not alerts.texts("trends")
    kinds = db.execute("SELECT kind, posted FROM ops.alert_events ORDER BY id").fetchall()
    assert sorted(kinds) == [("dag_failed", True), ("task_failed", True)]


def test_the_same_failure_within_the_window_is_posted_once_then_with_a_count(
    alerts: Any, db: Any, dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSE_ALERT_DEDUP_MINUTES", "60")
    # Three runs failing the same way.
    for _ in range(3):
        assert _run_probe(dagbag).state == "failed"
    assert len([t for t in alerts.texts("failures") if "Task failed" in t]) == 1
    assert len([t for t in alerts.texts("failures") if "DAG run failed" in t]) == 1
    log = {k: (o, s) for k, o, s in db.execute("SELECT kind, occurrences, suppressed FROM ops.alert_log")}
    assert log == {"task_failed": (3, 2), "dag_failed": (3, 2)}
    # Another error is another alert.
    assert _run_probe(dagbag, window=False).state == "failed"
    assert len([t for t in alerts.texts("failures") if "Task failed" in t]) == 2
    # Once the window has passed, the next one is posted and reports the repeats it stands for.
    db.execute("UPDATE ops.alert_log SET last_posted_at = last_posted_at - interval '61 minutes'")
    alerts.clear()
    assert _run_probe(dagbag).state == "failed"
    task_msg = [t for t in alerts.texts("failures") if "Task failed" in t]
    assert (
        len(task_msg) == 1
        and "Repeated: 2 more time(s) since" in task_msg[0]
        and "within 60 min" in task_msg[0]
    )
    held = db.execute("SELECT count(*) FROM ops.alert_events WHERE NOT posted").fetchone()[0]
    # Held back: two task and two DAG alerts of the first three runs, and the DAG alert of the run that failed
    # differently (a DAG run failing for the same reason is the same DAG alert).
    assert held == 5


def test_error_shape_masks_numbers_ids_and_times() -> None:
    a = error_shape(
        "PageFetchError: HTTP 503 from /r/python/new after 4 attempts at 2026-11-28T11:00:00+00:00"
    )
    b = error_shape(
        "PageFetchError: HTTP 502 from /r/python/new after 5 attempts at 2026-11-29T01:02:03+00:00"
    )
    assert a == b
    assert error_shape("SourceAuthError: 401") != error_shape("PageFetchError: 401")


def test_each_route_posts_to_its_own_connection(alerts: Any) -> None:
    for route in ("failures", "quality", "trends"):
        assert post_alert(
            Alert(route=route, kind="probe", title=f"probe {route}", dag_id="d", run_id="r", dedup_key=route),
            window_minutes=0,
        )
    assert [alerts.texts(r) for r in ("failures", "quality", "trends")] == [
        [alerts.texts("failures")[0]],
        [alerts.texts("quality")[0]],
        [alerts.texts("trends")[0]],
    ]
    assert "probe quality" in alerts.texts("quality")[0] and "probe trends" in alerts.texts("trends")[0]
    with pytest.raises(ValueError, match="unknown alert route"):
        PulseSlackNotifier(kind="task_failed", route="pager")


def test_an_alert_is_posted_even_when_the_dedup_store_is_down(
    alerts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSE_WAREHOUSE_DSN", "postgresql://nobody:x@127.0.0.1:1/none")
    alert = Alert(
        route="failures", kind="probe", title="warehouse down", dag_id="d", run_id="r", dedup_key="k"
    )
    assert post_alert(alert, window_minutes=60)
    assert post_alert(alert, window_minutes=60)  # no store: no dedup, never a lost alert
    texts = alerts.texts("failures")
    assert len(texts) == 2 and "dedup store unavailable" in texts[0]


def _deadline_context(state: str) -> dict[str, Any]:
    """The context the scheduler hands a deadline callback (airflow/models/deadline.py handle_miss)."""
    return {
        "dag_run": {
            "dag_id": "ingest_reddit",
            "dag_run_id": "manual__2026-11-28T11:00:00+00:00",
            "logical_date": None,
            "queued_at": "2026-11-28T11:00:01Z",
            "run_after": "2026-11-28T11:00:00Z",
            "data_interval_start": None,
            "data_interval_end": None,
            "state": state,
            "conf": {},
        },
        "deadline": {"id": "0199", "deadline_time": datetime(2026, 11, 28, 11, 30, tzinfo=UTC)},
    }


def _fire_like_the_triggerer(context: dict[str, Any]) -> list[Any]:
    """Run the deadline callback through Airflow's own CallbackTrigger, as the triggerer does."""
    from airflow.triggers.callback import CallbackTrigger

    from pulse.dag_defaults import deadline

    alert = deadline(timedelta(minutes=30))
    trigger = CallbackTrigger(
        callback_path=alert.callback.path, callback_kwargs={**alert.callback.kwargs, "context": context}
    )

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def test_a_missed_deadline_posts_through_the_triggerer_callback(alerts: Any, db: Any) -> None:
    events = _fire_like_the_triggerer(_deadline_context("running"))
    assert events[-1].payload["state"] == "success", events
    (text,) = alerts.texts("failures")
    assert "Deadline missed" in text and "`ingest_reddit`" in text and "done_within_30m" in text
    assert "`manual__2026-11-28T11:00:00+00:00`" in text and "2026-11-28 11:30 UTC" in text
    assert "/dags/ingest_reddit/runs/manual__2026-11-28T11%3A00%3A00%2B00%3A00" in text


def test_a_missed_deadline_of_a_run_that_already_failed_is_recorded_not_posted(alerts: Any, db: Any) -> None:
    events = _fire_like_the_triggerer(_deadline_context("failed"))
    assert events[-1].payload["state"] == "success"
    assert alerts.texts() == []
    assert db.execute("SELECT kind, posted, note FROM ops.alert_events").fetchall() == [
        ("deadline_missed", False, "run already failed (its failure alert was sent)")
    ]


def test_daily_digest_counts_alerts_and_repeats(alerts: Any, dagbag: Any) -> None:
    for _ in range(3):
        post_alert(
            Alert(
                route="failures",
                kind="task_failed",
                title="extract failed",
                dag_id="d",
                run_id="r",
                dedup_key="a",
            ),
            window_minutes=60,
        )
    post_alert(
        Alert(route="quality", kind="quality_failed", title="nulls", dag_id="q", run_id="r", dedup_key="b"),
        window_minutes=60,
    )
    alerts.clear()
    assert dag_test(dagbag.dags["alert_digest"]).state == "success"
    (text,) = alerts.texts("failures")
    assert "4 alert(s), 2 held back as repeats" in text
    assert "failures / task_failed: 3 (1 posted)" in text and "quality / quality_failed: 1 (1 posted)" in text
    assert "extract failed: 3 times" in text

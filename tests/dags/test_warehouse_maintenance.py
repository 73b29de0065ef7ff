"""warehouse_maintenance through dag.test(): partitions ahead, default partitions watched, moved and alerted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import dag_test

INSERT = """
INSERT INTO core.documents (source, external_id, kind, created_at, content_sha256, raw_response_id, dag_run_id)
VALUES ('maint', %s, 'post', %s, 'h', 1, 'manual')
"""


@pytest.fixture
def maintenance(dagbag: Any, airflow_db: None, warehouse: Any, slack: Any, db: Any) -> Any:
    dag = dagbag.dags.get("warehouse_maintenance")
    assert dag is not None, dagbag.import_errors
    db.execute("DELETE FROM core.documents WHERE source = 'maint'")
    slack.clear()
    yield dag
    db.execute("DELETE FROM core.documents WHERE source = 'maint'")


def _partition_of(db: Any, external_id: str) -> str:
    return db.execute(
        "SELECT tableoid::regclass::text FROM core.documents WHERE source = 'maint' AND external_id = %s",
        (external_id,),
    ).fetchone()[0]


def test_rows_in_the_default_partition_are_moved_and_alerted(maintenance: Any, db: Any, slack: Any) -> None:
    # A manual insert for a month without a partition lands in the default partition.
    db.execute(INSERT, ("a", "2015-03-10 12:00+00"))
    db.execute(INSERT, ("b", "2015-04-02 08:00+00"))
    assert _partition_of(db, "a") == "core.documents_default"

    dr = dag_test(maintenance)
    assert dr.state == "success"
    assert _partition_of(db, "a") == "core.documents_p2015_03"
    assert _partition_of(db, "b") == "core.documents_p2015_04"
    assert db.execute("SELECT sum(rows) FROM ops.default_partition_rows()").fetchone() == (0,)
    alerts = [t for t in slack.texts("failures") if "default partition" in t]
    assert len(alerts) == 1
    assert "core.documents_default" in alerts[0] and "2 rows" in alerts[0] and "0 left" in alerts[0]
    assert "warehouse_maintenance" in alerts[0] and "/dags/warehouse_maintenance/runs/" in alerts[0]
    # Partitions exist from this month to three months ahead.
    months = db.execute(
        """
        SELECT count(*) FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                                             date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
                                             interval '1 month') m
         WHERE to_regclass('core.documents_p' || to_char(m, 'YYYY_MM')) IS NOT NULL
           AND to_regclass('core.market_bars_p' || to_char(m, 'YYYY_MM')) IS NOT NULL
        """
    ).fetchone()[0]
    assert months == 4


def test_a_quiet_run_posts_nothing(maintenance: Any, slack: Any) -> None:
    dr = dag_test(maintenance)
    assert dr.state == "success"
    assert not [t for t in slack.texts() if "default partition" in t]


def test_rows_that_cannot_move_fail_the_run(maintenance: Any, db: Any, slack: Any) -> None:
    db.execute(INSERT, ("ancient", "1960-01-01 00:00+00"))
    try:
        dr = dag_test(maintenance)
        assert dr.state == "failed"
        texts = slack.texts()
        assert any("1 rows" in t and "1 left" in t for t in texts)
        assert any("watch_default_partitions" in t and "1960" in t for t in texts)  # the failure alert
        assert _partition_of(db, "ancient") == "core.documents_default"
    finally:
        db.execute("DELETE FROM core.documents WHERE source = 'maint'")

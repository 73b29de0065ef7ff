"""replay_quarantine through dag.test(): after a fix, quarantined items load once and are marked replayed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import WINDOW, dag_test, truncate_warehouse


@pytest.fixture
def dags(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    return dagbag.dags["ingest_reddit"], dagbag.dags["replay_quarantine"]


def _quarantine(db: Any) -> dict[str, tuple[str, str | None]]:
    rows = db.execute("SELECT reason_code, resolution, item_key FROM quality.quarantine").fetchall()
    return {key: (reason, resolution) for reason, resolution, key in rows}


def test_replay_after_a_fix_loads_items_once(
    dags: Any, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest, replay = dags
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.3}})
    assert dag_test(ingest, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "success"
    before = _quarantine(db)
    too_large = {k for k, (reason, _) in before.items() if reason == "text_too_large"}
    assert too_large and len(before) > len(too_large)
    docs_before = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]

    # The fix: allow larger texts. Replay only that reason code.
    monkeypatch.setattr("pulse.sources.base.MAX_TEXT_BYTES", 10_000_000)
    conf = {"source": "reddit", "reason_codes": ["text_too_large"]}
    assert dag_test(replay, run_conf=conf).state == "success"
    after = _quarantine(db)
    assert {k for k, (_, resolution) in after.items() if resolution == "replayed"} == too_large
    assert {k: v for k, v in after.items() if k not in too_large} == {
        k: v for k, v in before.items() if k not in too_large
    }  # other reasons untouched, still open
    docs_after = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]
    assert docs_after == docs_before + len(too_large)
    loaded = {r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()}
    assert too_large <= loaded

    # Replaying again selects nothing (rows are resolved) and adds no row.
    assert dag_test(replay, run_conf=conf).state == "success"
    assert db.execute("SELECT count(*) FROM core.documents").fetchone()[0] == docs_after


def test_items_that_still_fail_stay_open(dags: Any, db: Any, sim: Any) -> None:
    ingest, replay = dags
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.3}})
    assert dag_test(ingest, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "success"
    before = _quarantine(db)
    docs_before = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]
    assert dag_test(replay, run_conf={"source": "reddit"}).state == "success"  # no fix: nothing passes
    assert _quarantine(db) == before
    assert db.execute("SELECT count(*) FROM core.documents").fetchone()[0] == docs_before

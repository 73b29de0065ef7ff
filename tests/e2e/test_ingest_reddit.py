"""ingest_reddit end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import truncate_warehouse
from tests.e2e.test_ingest_scenarios import SOURCES, Ingest, counts, snapshot, start_ingest

pytestmark = pytest.mark.e2e

SOURCE = SOURCES["reddit"]


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("reddit", request)


def _counts(db: Any) -> tuple[int, ...]:
    got = counts(db, SOURCE)
    return (*got.loaded, got.quarantined, got.raw)


def _snapshot(db: Any) -> dict[Any, str]:
    return snapshot(db, SOURCE)


def test_bad_items_leave_the_rest_of_their_page_loaded(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    rows = db.execute(
        """
        SELECT q.raw_response_id, r.item_count,
               (SELECT count(*) FROM core.documents d WHERE d.raw_response_id = q.raw_response_id) AS loaded,
               (SELECT count(*) FROM quality.quarantine q2 WHERE q2.raw_response_id = q.raw_response_id) AS bad
        FROM quality.quarantine q JOIN raw.api_responses r ON r.id = q.raw_response_id
        GROUP BY q.raw_response_id, r.item_count
        """
    ).fetchall()
    assert rows
    for _raw_id, item_count, loaded, bad in rows:
        assert loaded > 0, "good items of a page with a bad item must load"
        assert loaded + bad == item_count


def test_schema_drift_quarantines_what_breaks_and_loads_what_does_not(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    # Posts lose their title (required): quarantined as missing_text. Comments' body becomes "text": the same.
    # A renamed optional field (selftext) just leaves the body empty.
    sim.configure(
        {"reddit": {"drift": {"rename": {"selftext": "self_text", "body": "text"}, "drop": ["title"]}}}
    )
    assert ingest().state == "success"
    reasons = dict(db.execute("SELECT reason_code, count(*) FROM quality.quarantine GROUP BY 1").fetchall())
    docs, quar, _ = _counts(db)
    assert set(reasons) == {"missing_text"}
    assert docs == 0
    assert quar == sim.stats()["reddit"]["served_count"]


def _hostile(sim: Any, *rules: dict[str, Any]) -> None:
    sim.configure({"reddit": {"hostile": {"tamper": list(rules)}}})


@pytest.mark.parametrize("created", [float("nan"), -1e20, 1e20, float("-inf"), "1764327600", True])
def test_a_hostile_created_utc_is_quarantined_while_its_neighbours_load(
    ingest: Any, db: Any, sim: Any, created: Any
) -> None:
    """NaN or -1e20 as ``created_utc`` used to fail the extract (ValueError / OverflowError in the listing-cap
    check); the item is quarantined as ``bad_timestamp`` and every other item loads."""
    truncate_warehouse(db)
    # The first post of every listing page (a retry would meet the same item again).
    rule = {"where": {"kind": "t3"}, "set": {"data.created_utc": created}, "limit": 1, "per_response": True}
    _hostile(sim, rule)
    dr = ingest()
    assert dr.state == "success"
    extract = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert extract.try_number == 1, "the extract must not fail on an item's value"
    docs, quar, _ = _counts(db)
    served = sim.stats()["reddit"]["served_count"]
    pages = db.execute(  # listing pages of posts (comment pages hold no t3)
        "SELECT count(*) FROM raw.api_responses WHERE stream LIKE 'new:%' AND item_count > 0"
    ).fetchone()[0]
    assert pages >= 2
    assert (docs, quar) == (served - pages, pages)
    reasons = db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall()
    assert {reason for _, reason in reasons} == {"bad_timestamp"}
    assert all(key.startswith("t3_") for key, _ in reasons)
    keys = [key for key, _ in reasons]
    assert (
        db.execute("SELECT count(*) FROM core.documents WHERE external_id = ANY(%s)", (keys,)).fetchone()[0]
        == 0
    )
    # The listing was paged as without the item: no listing_cap gap was made up from its time.
    gaps = db.execute("SELECT count(*) FROM ops.coverage WHERE reason = 'listing_cap'").fetchone()[0]
    assert gaps == 0


def test_a_lone_surrogate_in_an_id_is_quarantined_and_the_run_loads(ingest: Any, db: Any, sim: Any) -> None:
    """A lone UTF-16 surrogate in ``name`` used to fail the load on every retry with UnicodeEncodeError: now
    the item is quarantined (its key and item escaped, nothing dropped) and the rest of the run loads; a
    re-run gives the same rows."""
    truncate_warehouse(db)
    surrogate = {
        "where": {"kind": "t1"},
        "set": {"data.name": "t1_\ud800x", "data.id": "\ud800x"},
        "limit": 1,
    }
    _hostile(sim, surrogate)
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    assert (docs, quar) == (sim.stats()["reddit"]["served_count"] - 1, 1)
    row = db.execute(
        "SELECT item_key, external_id, reason_code, reason_detail, item FROM quality.quarantine"
    ).fetchone()
    assert row[:3] == ("t1_\\ud800x", "t1_\\ud800x", "bad_field")
    assert "surrogate" in row[3]
    assert row[4]["external_id"] == "t1_\\ud800x"  # the refused row, escaped: the evidence is kept
    before = (_snapshot(db), db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall())
    _hostile(sim, surrogate)  # served the same way again
    assert ingest().state == "success"
    assert (
        _snapshot(db),
        db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall(),
    ) == before


def test_a_fractional_score_is_quarantined_never_truncated(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    _hostile(
        sim,
        {"where": {"kind": "t3"}, "set": {"data.score": 12.5}, "limit": 1},
        {"where": {"kind": "t1"}, "set": {"data.score": 7.0, "data.body": "seven point oh"}, "limit": 1},
    )
    assert ingest().state == "success"
    [(key, reason, detail)] = db.execute(
        "SELECT item_key, reason_code, reason_detail FROM quality.quarantine"
    ).fetchall()
    assert reason == "bad_field" and "12.5" in detail
    assert db.execute("SELECT count(*) FROM core.documents WHERE external_id = %s", (key,)).fetchone()[0] == 0
    # 7.0 is the integer 7: no change of value, loaded.
    assert db.execute("SELECT score FROM core.documents WHERE body = 'seven point oh'").fetchone() == (7,)

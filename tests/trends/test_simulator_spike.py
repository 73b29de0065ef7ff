"""The spike switch of the simulator through every real part: three days of Reddit ingested over HTTP,
enriched, audited and published by the quality DAG, then the trends DAG, whose one Slack post names the
planted term.

The simulator plants a spike of "flu" (x5, negative) in the last hour; with three days of history the baseline
is the same hour of the days before (``same_hour_of_day``: the series is young). Reddit's volume is turned down
so three days fit under its listing cap (1,000 items a listing), which would otherwise leave gaps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SIM_NOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

NOW = datetime.fromisoformat(SIM_NOW)
SPIKE = (NOW - timedelta(hours=1), NOW)
WINDOW = (NOW - timedelta(days=3, hours=1), NOW)


@pytest.fixture
def stack(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, db: Any) -> Iterator[Any]:
    truncate_warehouse(db)
    slack.clear()
    yield dagbag
    truncate_warehouse(db)


def test_a_planted_spike_travels_from_the_simulator_to_slack(
    stack: Any, db: Any, sim: Any, slack: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # One subreddit, pages of 100 and room in the budget: three days in one run, no stream left with a gap
    # (a gap in any stream makes the source's hour unknown to trends, never a drop).
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "reddit: {conn_id: reddit_default, subreddits: [python], listings: [new, comments], page_size: 100}\n"
        "budgets: {reddit: [{per_seconds: 60, calls: 1000}]}\n"
    )
    monkeypatch.setenv("PULSE_SOURCES_FILE", str(sources))
    sim.configure(
        {
            "spike": {
                "term": "flu",
                "start": SPIKE[0].timestamp(),
                "end": SPIKE[1].timestamp(),
                "factor": 5,
                "tone": "negative",
                "sources": ["reddit"],
            },
            "reddit": {"bad_items_ratio": 0.0, "posts_per_hour": 4, "comments_per_hour": 6},
        }
    )
    monkeypatch.setenv("PULSE_NOW", (NOW + timedelta(minutes=10)).isoformat())
    run = dag_test(
        stack.dags["ingest_reddit"],
        run_conf={"window_start": WINDOW[0].isoformat(), "window_end": WINDOW[1].isoformat()},
    )
    assert run.state == "success"
    assert dag_test(stack.dags["enrich"]).state == "success"
    # One quality run audits and publishes the three days. Its state is not asserted: the critical freshness
    # check of X, which this test does not ingest, fails it after Reddit is published.
    dag_test(stack.dags["quality"])
    horizon = db.execute(
        "SELECT published_until FROM quality.publish_state WHERE source = 'reddit'"
    ).fetchone()
    assert horizon is not None and horizon[0] >= NOW, horizon
    assert dag_test(stack.dags["trends"]).state == "success"

    flu = db.execute(
        "SELECT hour, documents, baseline_basis, volume_spike FROM analytics.trend_hourly"
        " WHERE source = 'reddit' AND dimension = 'keyword' AND key = 'flu' AND observed ORDER BY hour"
    ).fetchall()
    spiked = [h for h, _, _, spike in flu if spike]
    assert spiked == [SPIKE[0]], flu[-30:]
    peak = next(r for r in flu if r[0] == SPIKE[0])
    assert peak[2] == "same_hour_of_day" and peak[1] >= 10
    posts = slack.texts("trends")
    assert len(posts) == 1, posts
    assert (
        "`flu`" in posts[0] and "on `reddit`" in posts[0] and "same hour over the previous 7 days" in posts[0]
    )
    # Nothing new: a second run posts nothing and changes nothing.
    assert dag_test(stack.dags["trends"]).state == "success"
    assert len(slack.texts("trends")) == 1

"""The ``trends`` DAG end to end on the test warehouse: five weeks of published history, a planted spike, a late
row, a coverage gap, a new source, a series that stops; the alert posted once, re-runs adding nothing, and a
rebuild from scratch giving the same rows.

History is written straight into core/enriched (as ingest and enrich leave it) with a deterministic shape
(daily cycle, weekend lift), then published as the quality DAG would (``quality.hour_audits`` +
``quality.publish_state``); the DAG under test is the real one, run like a manual run (``dag_test``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import TREND_TABLES, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

HOUR = timedelta(hours=1)
START = datetime(2026, 10, 24, tzinfo=UTC)  # a Saturday, five weeks before the end
END = datetime(2026, 11, 28, 11, tzinfo=UTC)  # horizon of the first run
GAP = [datetime(2026, 11, 20, 3, tzinfo=UTC) + i * HOUR for i in range(4)]  # budget spent: no ingest
STOP = datetime(2026, 11, 10, tzinfo=UTC)  # the keyword "oldnews" is not used after this


def rate(hour: datetime) -> int:
    """Documents of reddit in an hour: a daily cycle (4 to 12) and a weekend lift, no noise."""
    daily = 8 + 4 * math.sin(2 * math.pi * (hour.hour - 6) / 24)
    return round(daily + (2 if hour.weekday() >= 5 else 0))


def write_hour(db: Any, source: str, hour: datetime, n: int, *, tag: str = "base", keyword: str | None = None,
               label: str | None = None, covered: bool = True, reason: str | None = None) -> None:  # fmt: skip
    """``n`` documents of ``source`` created in ``hour`` with features and mentions, and the hour's coverage."""
    docs, feats, ments = [], [], []
    labels = ("positive", "neutral", "negative")
    for i in range(n):
        ext = f"{tag}_{hour:%Y%m%d%H}_{i}"
        created = hour + timedelta(minutes=(i * 7) % 60, seconds=i)
        docs.append(
            (source, ext, "post", created, f"title {tag} {i}", f"body {i}", f"https://example.test/{ext}", i)
        )
        kws = ["python", f"kw{i % 4}"]
        if hour < STOP and source == "reddit" and i % 3 == 0:
            kws.append("oldnews")
        if keyword:
            kws.insert(0, keyword)
        feats.append((source, ext, created, label or labels[i % 3], kws, "technology"))
        if i % 2 == 0:
            ments.append((source, ext, created, "Python Software Foundation"))
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO core.documents (source, external_id, kind, created_at, title, body, url, score,"
            " author_pseudonym, content_sha256, raw_response_id, dag_run_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'a', 'h', 1, 'seed')",
            docs,
        )
        cur.executemany(
            "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
            " sentiment_label, keywords, topic) VALUES (%s, %s, %s, 'test', %s, %s, %s)",
            feats,
        )
        cur.executemany(
            "INSERT INTO enriched.entity_mentions (source, external_id, created_at, enrichment_version,"
            " entity_type, text, normalized, start_offset, end_offset)"
            " VALUES (%s, %s, %s, 'test', 'organisation', %s, %s, 0, 6)",
            [(s, e, c, name, name) for s, e, c, name in ments],
        )
        status = "ingested" if covered else "gap"
        cur.execute(
            "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, reason, dag_run_id)"
            " VALUES (%s, 'new:python', %s, %s, %s, %s, 'seed') ON CONFLICT DO NOTHING",
            (source, hour, hour + HOUR, status, reason),
        )


def publish(db: Any, source: str, until: datetime, hours: list[datetime] | None = None) -> None:
    """What a passing quality run leaves: the hours audited and published now, the horizon at ``until``."""
    db.execute(
        """
        INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)
        SELECT %s, hour, clock_timestamp(), clock_timestamp(), 'seed'
          FROM (SELECT DISTINCT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00+00') AS hour
                  FROM core.documents WHERE source = %s) h
         WHERE %s::timestamptz[] IS NULL OR h.hour = ANY(%s)
        ON CONFLICT (source, hour) DO UPDATE SET audited_at = clock_timestamp(), published_at = clock_timestamp()
        """,
        (source, source, hours, hours),
    )
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id) VALUES (%s, %s, 'seed')"
        " ON CONFLICT (source) DO UPDATE SET published_until = EXCLUDED.published_until",
        (source, until),
    )


def trends(dagbag: Any, monkeypatch: pytest.MonkeyPatch, now: datetime, **conf: Any) -> Any:
    monkeypatch.setenv("PULSE_NOW", now.isoformat())
    return dag_test(dagbag.dags["trends"], run_conf=conf or None)


def summary(run: Any) -> dict[str, Any]:
    ti = next(t for t in run.get_task_instances() if t.task_id == "compute_trends")
    return ti.xcom_pull(task_ids="compute_trends")


def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every trend table's rows without the bookkeeping times (what a rebuild must give again)."""
    return {
        "hours": db.execute(
            "SELECT source, hour, observed, gap_reason, documents FROM analytics.trend_source_hours ORDER BY 1, 2"
        ).fetchall(),
        "series": db.execute("SELECT * FROM analytics.trend_series ORDER BY 1, 2, 3").fetchall(),
        "hourly": db.execute(
            "SELECT source, dimension, key, hour, documents, positive, negative, baseline_basis,"
            " round(baseline_documents::numeric, 6), round(volume_z::numeric, 6), round(sentiment_z::numeric, 6),"
            " volume_spike, sentiment_spike FROM analytics.trend_series_hourly ORDER BY 1, 2, 3, 4"
        ).fetchall(),
        "spikes": db.execute(
            "SELECT source, dimension, key, metric, direction, episode_start, episode_end, peak_hour, peak_value,"
            " documents FROM analytics.trend_spikes ORDER BY 1, 2, 3, 4, 6"
        ).fetchall(),
        "forecasts": db.execute(
            "SELECT source, dimension, key, hour, origin, round(forecast::numeric, 6) FROM analytics.trend_forecasts"
            " ORDER BY 1, 2, 3, 4"
        ).fetchall(),
    }


@pytest.fixture
def history(dagbag: Any, airflow_db: None, warehouse: Any, slack: Any, db: Any) -> Iterator[Any]:
    truncate_warehouse(db)  # the trend tables too
    slack.clear()
    hour = START
    while hour < END:
        if hour in GAP:
            write_hour(db, "reddit", hour, 0, covered=False, reason="budget_exhausted")
            # Another stream was ingested in the same hour: one stream's gap still makes the hour unknown.
            db.execute(
                "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
                " VALUES ('reddit', 'comments:python', %s, %s, 'ingested', 'seed')",
                (hour, hour + HOUR),
            )
        else:
            write_hour(db, "reddit", hour, rate(hour))
        hour += HOUR
    publish(db, "reddit", END)
    yield dagbag
    truncate_warehouse(db)


def test_trends_end_to_end(history: Any, db: Any, slack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # --- run 1: five weeks of history, nothing unusual in it ------------------------------------------------
    first = trends(history, monkeypatch, END + timedelta(minutes=20))
    assert first.state == "success"
    out = summary(first)["sources"]["reddit"]
    assert out["new_hours"] == 35 * 24 + 11 and out["read_from"] == START.isoformat()
    assert out["gap_hours"] == len(GAP) and out["episodes_new"] == 0
    assert not slack.texts("trends"), slack.texts("trends")
    state = db.execute("SELECT hours_until FROM ops.trends_state WHERE source = 'reddit'").fetchone()
    assert state[0] == END

    # Gaps are unknown, never zero; an observed hour holds the documents it had.
    rows = db.execute(
        "SELECT hour, observed, documents FROM analytics.trend_hourly WHERE source = 'reddit'"
        " AND dimension = 'source' AND key = 'reddit' AND hour = ANY(%s) ORDER BY hour",
        ([GAP[0], GAP[-1] + HOUR],),
    ).fetchall()
    assert rows == [(GAP[0], False, None), (GAP[-1] + HOUR, True, rate(GAP[-1] + HOUR))]
    reason = db.execute(
        "SELECT gap_reason FROM analytics.trend_source_hours WHERE source = 'reddit' AND hour = %s", (GAP[1],)
    ).fetchone()[0]
    assert reason == "budget_exhausted"
    # The moving average of a gap day counts its observed hours only: the same daily rate as its neighbours.
    gap_day = GAP[0].date()
    daily = dict(
        db.execute(
            "SELECT day, ma_7d FROM analytics.trend_daily WHERE source = 'reddit' AND dimension = 'source'"
            " AND day BETWEEN %s AND %s",
            (gap_day - timedelta(days=1), gap_day),
        ).fetchall()
    )
    assert abs(daily[gap_day] - daily[gap_day - timedelta(days=1)]) < 3.0, daily
    # A series that stopped: zeros afterwards (observed), no spike, no error.
    stopped = db.execute(
        "SELECT count(*), coalesce(sum(documents), 0), bool_or(volume_spike) FROM analytics.trend_hourly"
        " WHERE source = 'reddit' AND dimension = 'keyword' AND key = 'oldnews' AND hour >= %s AND observed",
        (STOP,),
    ).fetchone()
    assert stopped[0] > 24 * 14 and stopped[1] == 0 and stopped[2] is False
    # Forecasts for the busy series: 24 hours from the horizon, intervals around the forecast.
    fc = db.execute(
        "SELECT count(*), min(hour), max(hour), bool_and(lower_95 <= forecast AND forecast <= upper_95"
        " AND lower_80 >= lower_95 AND upper_80 <= upper_95) FROM analytics.trend_forecasts"
        " WHERE source = 'reddit' AND dimension = 'source'"
    ).fetchone()
    assert fc == (24, END, END + 23 * HOUR, True)
    expected = rate(END)
    got = db.execute(
        "SELECT forecast FROM analytics.trend_forecasts WHERE source = 'reddit' AND dimension = 'source'"
        " AND hour = %s",
        (END,),
    ).fetchone()[0]
    assert abs(got - expected) <= 2, (got, expected)

    # --- run 2: the next hour holds a spike of a new keyword, and a new source appears ----------------------
    spike_hour = END
    write_hour(db, "reddit", spike_hour, rate(spike_hour))
    write_hour(db, "reddit", spike_hour, 45, tag="flu", keyword="flu", label="negative", covered=True)
    write_hour(db, "x", spike_hour, 60, tag="x")  # a source with no history at all: no verdict, no alert
    publish(db, "reddit", END + HOUR, [spike_hour])
    publish(db, "x", END + HOUR)
    second = trends(history, monkeypatch, END + timedelta(hours=1, minutes=20))
    assert second.state == "success"
    out = summary(second)["sources"]["reddit"]
    # Incremental: only the new hour was read and recomputed (plus its baseline).
    assert (out["new_hours"], out["changed_hours"], out["recomputed_hours"]) == (1, 0, 1)
    assert out["read_from"] == spike_hour.isoformat()
    episodes = db.execute(
        "SELECT dimension, key, metric, direction, peak_value, baseline, documents, alerted_at IS NOT NULL,"
        " jsonb_array_length(top_documents) FROM analytics.trend_spikes ORDER BY dimension, key, metric"
    ).fetchall()
    by = {(d, k, m): row for d, k, m, *row in episodes}
    assert ("keyword", "flu", "volume") in by, episodes
    flu = by[("keyword", "flu", "volume")]
    assert flu[0] == "up" and flu[1] == 45 and flu[2] == 0 and flu[3] == 45 and flu[4] is True and flu[5] == 3
    total = rate(spike_hour) + 45
    assert by[("source", "reddit", "volume")][1] == total
    assert by[("source", "reddit", "sentiment")][0] == "down"
    assert not [e for e in episodes if e[0] == "source" and e[1] == "x"], "x has no history: no verdict"
    x_basis = db.execute(
        "SELECT DISTINCT baseline_basis FROM analytics.trend_series_hourly WHERE source = 'x'"
    ).fetchall()
    assert x_basis == [("none",)]
    # One burst, one post: led by the new keyword, every other series it moved listed under it.
    posts = slack.texts("trends")
    assert len(posts) == 1 and all(e[6] for e in episodes), posts
    flu_post = posts[0]
    assert flu_post.startswith(":chart_with_upwards_trend: *Volume spike*: keyword `flu` on `reddit`"), (
        flu_post
    )
    assert (
        "*45 documents*" in flu_post
        and "baseline of *0.0*" in flu_post
        and "Sample: 45 documents" in flu_post
    )
    assert f"Moving with it ({len(episodes) - 1})" in flu_post and "all of `reddit`" in flu_post
    assert "https://example.test/flu_" in flu_post and "/dags/trends/runs/" in flu_post
    # Recorded like every alert: the daily digest counts it under its route and kind.
    events = db.execute("SELECT route, kind, posted FROM ops.alert_events WHERE route = 'trends'").fetchall()
    assert events == [("trends", "trend_spike", True)]
    from pulse.alerts import digest_text

    digest = digest_text(db, END - timedelta(days=400), END + timedelta(days=400))
    assert "trends / trend_spike: 1 (1 posted)" in digest, digest

    # --- run 3: nothing new: no row changes, no post -------------------------------------------------------
    before = snapshot(db)
    third = trends(history, monkeypatch, END + timedelta(hours=1, minutes=30))
    assert third.state == "success"
    quiet = summary(third)["sources"]["reddit"]
    assert quiet["recomputed_hours"] == 0 and quiet["forecast_series"] == 0  # the last forecasts are kept
    assert snapshot(db) == before
    assert len(slack.texts("trends")) == len(posts)

    # --- run 4: the spike goes on for another hour: the same episode, no second post ------------------------
    nxt = END + HOUR
    write_hour(db, "reddit", nxt, rate(nxt))
    write_hour(db, "reddit", nxt, 50, tag="flu", keyword="flu", label="negative")
    publish(db, "reddit", END + 2 * HOUR, [nxt])
    fourth = trends(history, monkeypatch, END + timedelta(hours=2, minutes=20))
    assert fourth.state == "success"
    # Series that begin spiking only now join the posted burst: recorded, not posted.
    out4 = summary(fourth)
    assert out4["alerts"]["joined"] == out4["sources"]["reddit"]["episodes_new"]
    assert out4["alerts"]["posts"] == 0
    flu_eps = db.execute(
        "SELECT episode_start, episode_end, peak_hour, peak_value FROM analytics.trend_spikes"
        " WHERE key = 'flu' AND metric = 'volume'"
    ).fetchall()
    strongest = db.execute(
        "SELECT hour, documents FROM analytics.trend_series_hourly WHERE dimension = 'keyword' AND key = 'flu'"
        " ORDER BY volume_z DESC, hour LIMIT 1"
    ).fetchone()
    assert flu_eps == [(spike_hour, nxt, strongest[0], float(strongest[1]))]
    assert len(slack.texts("trends")) == len(posts)

    # --- run 5: a late row in an old hour: that hour is recomputed, not the five weeks ---------------------
    late_hour = datetime(2026, 11, 27, 5, tzinfo=UTC)
    write_hour(db, "reddit", late_hour, 2, tag="late")
    publish(db, "reddit", END + 2 * HOUR, [late_hour])
    fifth = trends(history, monkeypatch, END + timedelta(hours=2, minutes=30))
    out = summary(fifth)["sources"]["reddit"]
    assert (out["new_hours"], out["changed_hours"], out["recomputed_hours"]) == (0, 1, 1)
    assert out["read_from"] == late_hour.isoformat()
    # Later hours whose baseline reads it are rescored (a day and a week later), never more than 28 days on.
    assert out["rescored_rows"] > 0
    docs = db.execute(
        "SELECT documents FROM analytics.trend_series_hourly WHERE source = 'reddit' AND dimension = 'source'"
        " AND hour = %s",
        (late_hour,),
    ).fetchone()[0]
    assert docs == rate(late_hour) + 2

    # --- a rebuild from scratch gives the same rows (a backfill in any order ends where in-order runs do) ---
    incremental = snapshot(db)
    db.execute(f"TRUNCATE {TREND_TABLES}")
    slack.clear()
    rebuilt = trends(history, monkeypatch, END + timedelta(hours=2, minutes=40))
    assert rebuilt.state == "success"
    again = snapshot(db)
    assert again["hours"] == incremental["hours"] and again["series"] == incremental["series"]
    assert again["hourly"] == incremental["hourly"]
    assert again["spikes"] == incremental["spikes"]
    # The rebuild found the episodes in its backlog; the recent one is posted again only because its Slack
    # bookkeeping was truncated too (ops.alert_log keeps a 60-minute window; PULSE_ALERT_DEDUP_MINUTES=0 here).
    assert len(slack.texts("trends")) == 1 and "`flu`" in slack.texts("trends")[0]


def test_conf_is_refused(history: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run = trends(history, monkeypatch, END + timedelta(minutes=20), window_start="2026-11-01T00:00:00Z")
    assert run.state == "failed"


def test_analyst_reads_every_trend_relation(
    history: Any, db: Any, warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    assert trends(history, monkeypatch, END + timedelta(minutes=20)).state == "success"
    relations = [
        r[0]
        for r in db.execute(
            "SELECT schemaname || '.' || relname FROM pg_stat_user_tables WHERE schemaname = 'analytics'"
            " AND relname LIKE 'trend%%' UNION SELECT 'analytics.' || viewname FROM pg_views"
            " WHERE schemaname = 'analytics' AND (viewname LIKE 'trend%%' OR viewname IN ('emerging_terms',"
            " 'market_sentiment_daily', 'github_star_velocity', 'github_trending', 'weather_sentiment_by_city'))"
        ).fetchall()
    ]
    assert len(relations) >= 12, relations
    with psycopg.connect(**warehouse, autocommit=True, options="-c role=analyst") as analyst:
        for rel in relations:
            analyst.execute(f"SELECT * FROM {rel} LIMIT 1").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("SELECT * FROM ops.trends_state")


def test_posts_are_capped_per_run_and_backlog_episodes_are_not_posted(
    warehouse: Any, slack: Any, db: Any
) -> None:
    from pulse.trends.run import MAX_ALERTS_PER_RUN, alert_new_episodes

    truncate_warehouse(db)
    slack.clear()
    horizon = END
    rows = [
        (f"s{i}", "keyword", f"k{i}", END - (i + 1) * HOUR)  # one burst per source: a post each
        for i in range(MAX_ALERTS_PER_RUN + 3)
    ] + [("old", "keyword", "k", END - 3 * timedelta(days=1))]  # found in a backlog
    for source, dim, key, hour in rows:
        db.execute(
            "INSERT INTO analytics.trend_spikes (source, dimension, key, metric, direction, episode_start,"
            " episode_end, peak_hour, peak_value, baseline, peak_z, documents, baseline_basis, dag_run_id)"
            " VALUES (%s, %s, %s, 'volume', 'up', %s, %s, %s, 40, 2, 9, 40, 'same_hour_of_week', 't')",
            (source, dim, key, hour, hour, hour),
        )
    horizons = {source: horizon for source, *_ in rows}
    counts = alert_new_episodes(db, horizons, "manual__cap")
    assert counts == {
        "posts": MAX_ALERTS_PER_RUN, "episodes": MAX_ALERTS_PER_RUN, "historical": 1, "joined": 0, "capped": 3,
        "failed": 0,
    }  # fmt: skip
    posts = slack.texts("trends")
    assert len(posts) == MAX_ALERTS_PER_RUN + 1
    assert posts[-1].startswith(":chart_with_upwards_trend: 3 more spike episodes this run"), posts[-1]
    notes = dict(db.execute("SELECT alert_note, count(*) FROM analytics.trend_spikes GROUP BY 1").fetchall())
    assert notes == {None: MAX_ALERTS_PER_RUN, "capped": 3, "historical": 1}
    # Nothing is pending any more: a second call posts nothing.
    assert alert_new_episodes(db, horizons, "manual__cap2")["posts"] == 0
    assert len(slack.texts("trends")) == MAX_ALERTS_PER_RUN + 1
    truncate_warehouse(db)

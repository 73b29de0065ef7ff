"""The derived trend views on known rows: returns and volatility next to sentiment, star velocity and the
trending ranking, weather against sentiment, emerging terms. Each expected figure is worked out by hand here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import publish_everything, truncate_warehouse

pytestmark = pytest.mark.e2e

D1 = datetime(2026, 11, 2, 21, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def wh(warehouse: Any, db: Any) -> Iterator[Any]:
    truncate_warehouse(db)
    yield db
    truncate_warehouse(db)


def _series(
    db: Any, source: str, dimension: str, key: str, hour: datetime, docs: int, pos: int, neg: int
) -> None:
    db.execute(
        "INSERT INTO analytics.trend_series_hourly (source, dimension, key, hour, documents, positive, negative,"
        " baseline_basis, volume_spike, sentiment_spike) VALUES (%s, %s, %s, %s, %s, %s, %s, 'none', false, false)",
        (source, dimension, key, hour, docs, pos, neg),
    )


def _bar(db: Any, symbol: str, interval: str, ts: datetime, close: float) -> None:
    db.execute(
        "INSERT INTO core.market_bars (source, symbol, market, asset_class, interval, ts, close, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('alphavantage', %s, 'NASDAQ', 'stock', %s, %s, %s, 'h', 1, 't')",
        (symbol, interval, ts, close),
    )


def test_returns_and_volatility_next_to_sentiment(wh: Any) -> None:
    from pulse.enrich.entities import symbols
    from pulse.trends.run import refresh_ticker_entities

    _bar(wh, "AAPL", "daily", D1, 100)
    _bar(wh, "AAPL", "60min", D1 + DAY - 3 * HOUR, 105)  # earlier that day: the day's last bar wins
    _bar(wh, "AAPL", "daily", D1 + DAY, 110)
    _bar(wh, "AAPL", "daily", D1 + 2 * DAY, 99)
    publish_everything(wh)
    assert refresh_ticker_entities(wh) == 1
    entity = symbols()["AAPL"][1]
    _series(wh, "reddit", "entity", entity, D1 + DAY - 5 * HOUR, 4, 3, 1)
    _series(wh, "x", "entity", entity, D1 + DAY - 2 * HOUR, 2, 0, 2)
    rows = wh.execute(
        "SELECT day, entity, close, daily_return, volatility_20d, return_days_20d, documents, net_sentiment"
        " FROM analytics.market_sentiment_daily WHERE symbol = 'AAPL' ORDER BY day"
    ).fetchall()
    days = [r[0] for r in rows]
    assert days == [(D1 + i * DAY).date() for i in range(3)]
    assert all(r[1] == entity for r in rows)
    assert [r[2] for r in rows] == [100.0, 110.0, 99.0]
    assert rows[0][3] is None and math.isclose(rows[1][3], 0.1) and math.isclose(rows[2][3], -0.1)
    assert rows[1][4] is None and math.isclose(rows[2][4], math.sqrt(0.02)) and rows[2][5] == 2
    assert (rows[0][6], rows[0][7]) == (0, None)
    assert (rows[1][6], rows[1][7]) == (6, 0.0)  # 3 positive and 3 negative of 6, over both sources


def _snapshot(db: Any, repo: str, at: datetime, stars: int) -> None:
    db.execute(
        "INSERT INTO core.github_repo_snapshots (source, repo, snapshot_at, stars, forks, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('github', %s, %s, %s, 1, 'h', 1, 't')",
        (repo, at, stars),
    )


def test_star_velocity_and_the_trending_ranking(wh: Any) -> None:
    _snapshot(wh, "a/fast", D1, 100)
    _snapshot(wh, "a/fast", D1 + 2 * DAY, 130)
    _snapshot(wh, "a/fast", D1 + 2 * DAY + 2 * HOUR, 131)  # same UTC day, later: the day's last snapshot
    _snapshot(wh, "a/fast", D1 + 7 * DAY, 170)
    _snapshot(wh, "b/slow", D1 + 5 * DAY, 1000)
    _snapshot(wh, "b/slow", D1 + 7 * DAY, 1004)
    _snapshot(wh, "c/new", D1 + 7 * DAY, 50)
    publish_everything(wh)
    _series(wh, "github", "repository", "a/fast", D1 + 6 * DAY, 5, 0, 0)
    _series(wh, "github", "repository", "a/fast", D1 - 2 * DAY, 9, 0, 0)  # before the week: not counted
    vel = wh.execute(
        "SELECT day, stars, stars_gained, round(stars_per_day::numeric, 4)::float8 FROM analytics.github_star_velocity"
        " WHERE repo = 'a/fast' ORDER BY day"
    ).fetchall()
    assert vel == [
        (D1.date(), 100, None, None),
        ((D1 + 2 * DAY).date(), 131, 31, round(31 / (2 + 2 / 24), 4)),
        ((D1 + 7 * DAY).date(), 170, 39, round(39 / (5 - 2 / 24), 4)),
    ]
    trending = wh.execute(
        "SELECT repo, stars, stars_gained_7d, window_days, stars_per_day, documents_7d, rank"
        " FROM analytics.github_trending ORDER BY rank, repo"
    ).fetchall()
    assert [r[0] for r in trending] == ["a/fast", "b/slow", "c/new"]
    fast, slow, new = trending
    assert fast[1:4] == (170, 70, 7.0) and math.isclose(fast[4], 10.0) and fast[5] == 5 and fast[6] == 1
    assert slow[2] == 4 and math.isclose(slow[4], 2.0) and slow[5] == 0
    assert new[2] == 0 and new[4] is None and new[6] == 3


def test_weather_against_sentiment_per_city(wh: Any) -> None:
    for i, temp in enumerate((5.0, 10.0, 15.0, 20.0, 25.0)):
        wh.execute(
            "INSERT INTO core.weather_observations (source, city, country, kind, valid_at, issued_at, temp_c,"
            " clouds_pct, content_sha256, raw_response_id, dag_run_id)"
            " VALUES ('openweathermap', 'London', 'GB', 'current', %s, %s, %s, 50, 'h', 1, 't')",
            (D1 + i * DAY, D1 + i * DAY, temp),
        )
    publish_everything(wh)
    # Net sentiment -0.5, 0, 0.5, 1.0 on the first four days (4 documents each); 2 documents on the fifth: too
    # few, that day is left out.
    for i, (pos, neg) in enumerate(((1, 3), (2, 2), (3, 1), (4, 0))):
        _series(wh, "reddit", "entity", "London", D1 + i * DAY, 4, pos, neg)
    _series(wh, "reddit", "entity", "London", D1 + 4 * DAY, 2, 0, 2)
    row = wh.execute(
        "SELECT days, documents, round(temp_sentiment_corr::numeric, 6), temp_sentiment_t, clouds_sentiment_corr"
        " FROM analytics.weather_sentiment_by_city WHERE city = 'London'"
    ).fetchone()
    assert row[:3] == (4, 16, 1)
    assert row[3] is None  # a perfect correlation has no finite t: NULL, not a division error
    assert row[4] is None  # clouds never varied


def test_emerging_terms_need_growth_and_support(wh: Any) -> None:
    end = D1 + 8 * DAY
    with wh.cursor() as cur:
        cur.executemany(
            "INSERT INTO analytics.trend_source_hours (source, hour, observed, documents) VALUES ('x', %s, %s, 0)",
            [(end - (i + 1) * HOUR, (i + 1) % 50 != 0) for i in range(8 * 24)],
        )
    for day in range(1, 8):  # the 7 days before the last 24 hours
        _series(wh, "x", "keyword", "flu", end - 24 * HOUR - day * DAY + 3 * HOUR, 1, 0, 0)
        _series(wh, "x", "keyword", "steady", end - 24 * HOUR - day * DAY + 3 * HOUR, 10, 0, 0)
    _series(wh, "x", "keyword", "flu", end - 2 * HOUR, 30, 0, 0)
    _series(wh, "x", "keyword", "steady", end - 2 * HOUR, 12, 0, 0)
    _series(wh, "x", "keyword", "tiny", end - 2 * HOUR, 5, 0, 0)
    rows = wh.execute(
        "SELECT key, documents_24h, observed_hours_24h, round(prior_per_day::numeric, 3)::float8, rank, window_end"
        " FROM analytics.emerging_terms WHERE source = 'x' ORDER BY rank"
    ).fetchall()
    assert [r[0] for r in rows] == ["flu"], rows
    _, docs, hours24, prior, rank, window_end = rows[0]
    assert (docs, rank, window_end) == (30, 1, end)
    observed_prior = sum(1 for i in range(24, 8 * 24) if (i + 1) % 50 != 0)
    assert hours24 == 24 and prior == round(24 * 7 / observed_prior, 3)

"""Small pieces of ``pulse.trends.run`` without a database: scoring on sparse rows, the alert's text, snippets."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.trends import run
from pulse.trends.run import Episode, Row, floor_hour, hour_range, score_rows

EXAMPLES = 20 if os.environ.get("PULSE_FAST_LANE") else 200
T0 = datetime(2026, 10, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_floor_hour_and_range() -> None:
    assert floor_hour(datetime(2026, 11, 28, 11, 59, 59, 999, tzinfo=UTC)) == datetime(
        2026, 11, 28, 11, tzinfo=UTC
    )
    assert hour_range(T0, T0 + 3 * HOUR) == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert hour_range(T0 + 30 * timedelta(minutes=1), T0 + HOUR) == [T0]
    assert hour_range(T0, T0) == []


def _history(weeks: int, per_hour: int) -> dict[datetime, Row]:
    return {T0 + i * HOUR: Row(per_hour, per_hour // 3, per_hour // 3) for i in range(weeks * 168)}


def test_a_burst_after_a_flat_month_is_a_spike_and_a_gap_hour_is_never_judged() -> None:
    key = ("keyword", "flu")
    rows = _history(4, 5)
    hours = hour_range(T0, T0 + 4 * 168 * HOUR + 2 * HOUR)
    burst, gap = hours[-2], hours[-1]
    rows[burst] = Row(60, 0, 50)
    rows[gap] = Row(80, 0, 70)  # documents in a gap hour are partial: no verdict
    observed = {h: h != gap for h in hours}
    scores = score_rows({key: rows}, {key: [burst, gap]}, observed, hours[0], hours[-1] + HOUR)
    hit = scores[(key, burst)]
    assert hit.volume_spike and hit.basis == "same_hour_of_week" and hit.baseline == 5.0
    assert hit.sentiment_spike and hit.sentiment_z is not None and hit.sentiment_z < 0
    miss = scores[(key, gap)]
    assert (miss.volume_spike, miss.sentiment_spike, miss.basis, miss.volume_z) == (
        False,
        False,
        "none",
        None,
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    counts=st.dictionaries(st.integers(0, 24 * 40 - 1), st.integers(0, 10**9), min_size=0, max_size=200),
    gaps=st.sets(st.integers(0, 24 * 40 - 1), max_size=100),
    judged=st.sets(st.integers(0, 24 * 40 - 1), min_size=1, max_size=30),
)
def test_scoring_any_sparse_series_never_fails_and_never_judges_a_gap(
    counts: dict[int, int], gaps: set[int], judged: set[int]
) -> None:
    key = ("entity", "x")
    start, end = T0, T0 + 24 * 40 * HOUR
    rows = {T0 + i * HOUR: Row(n, n // 2, n // 4) for i, n in counts.items() if n > 0}
    observed = {T0 + i * HOUR: i not in gaps for i in range(24 * 40)}
    want = [T0 + i * HOUR for i in sorted(judged)]
    scores = score_rows({key: rows}, {key: want}, observed, start, end)
    assert set(scores) == {(key, h) for h in want}
    for h in want:
        s = scores[(key, h)]
        docs = rows.get(h, Row(0, 0, 0)).documents
        if not observed[h]:
            assert not s.volume_spike and not s.sentiment_spike and s.basis == "none"
        if docs < 10:
            assert not s.volume_spike
        for v in (s.baseline, s.volume_z, s.ratio, s.baseline_sentiment, s.sentiment_z):
            assert v is None or v == v  # never NaN: stored as NULL


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=500))
def test_snippets_are_short_printable_single_lines(text: str) -> None:
    out = run._snippet(text)
    assert len(out) <= 140 and "\n" not in out and all(ch.isprintable() for ch in out)


def _episode(key: str, **kw: object) -> Episode:
    base: dict[str, object] = {
        "spike_id": 1,
        "source": "reddit",
        "dimension": "keyword",
        "key": key,
        "metric": "volume",
        "direction": "up",
        "episode_start": T0,
        "peak_hour": T0,
        "peak_value": 40.0,
        "baseline": 4.0,
        "peak_z": 9.5,
        "documents": 40,
        "baseline_basis": "same_hour_of_week",
    }
    base.update(kw)
    return Episode(**base)  # type: ignore[arg-type]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_the_alert_names_any_key_and_quotes_it_safely_in_its_query(key: str) -> None:
    alert = run.spike_alert([_episode(key)], "manual__1")
    text = alert.text()
    assert f"`{key}`" in text
    assert "key = '" + key.replace("'", "''") + "'" in text
    assert alert.dedup_key.startswith("trend_spike|reddit|2026-10-01T00|volume|keyword|")


def test_one_post_leads_with_the_term_and_lists_the_source_first_among_the_rest() -> None:
    group = [
        _episode("reddit", spike_id=1, dimension="source", peak_value=60.0, baseline=12.0, peak_z=8.0),
        _episode("flu", spike_id=2, peak_value=45.0, baseline=0.0, peak_z=45.0),
        _episode("technology", spike_id=3, dimension="topic", peak_value=59.0, baseline=14.0, peak_z=8.8),
        _episode(
            "technology", spike_id=4, dimension="topic", metric="sentiment", direction="down", peak_value=-0.75,
            baseline=0.07, peak_z=-4.8,
        ),
    ]  # fmt: skip
    text = run.spike_alert(group, "r").text()
    assert text.startswith(":chart_with_upwards_trend: *Volume spike*: keyword `flu` on `reddit`")
    assert "*45 documents*" in text and "x45.0" in text
    moving = text.split("Moving with it (3):\n", 1)[1].split("\n")
    assert moving[0].startswith("• all of `reddit`: *60 documents*")
    assert "net sentiment *-0.75* against *0.07* (down)" in text

"""The ``trends`` DAG's work: fold newly published hours into the trend series, score them, alert on spikes.

One run, per source (``quality.publish_state``), under an advisory lock:

1. **What is new** (``ops.trends_state``): hours published since the last run, i.e. hours of
   ``quality.hour_audits`` whose ``published_at`` is after the cursor (new hours, and older hours a late row
   made the quality DAG publish again), plus every hour between the last run's horizon and the source's
   publication horizon (``analytics.trend_source_hours``: observed, or in a coverage gap of ``ops.coverage``).
   Nothing before is read except the baseline: the same series over the 4 weeks before (plus the weeks after,
   when an old hour changed, so later hours are scored as if the data had arrived in order).
2. **Series** (``analytics.trend_series_hourly``): per hour, documents and positive/negative counts per source,
   topic, entity (any type, by canonical name), ticker (ticker and crypto mentions), keyword and GitHub
   repository, from the ``published`` views only. Recomputed hours are replaced, so a re-run or a backfill
   gives the same rows.
3. **Scores** (:mod:`pulse.trends.detect`): robust z-scores against the same hour of the week; spike flags;
   spiking hours merge into episodes (``analytics.trend_spikes``).
4. **Alerts**: one Slack post per burst: the new episodes of a source that began in the same hour (a burst of
   documents moves its topic, keywords and entities together) go out as one post to route ``trends``, led by
   the most specific and strongest one, the others listed under it (:func:`pulse.alerts.post_alert`,
   deduplicated on the lead episode; an episode is never posted twice, ``alerted_at``); a series that starts
   spiking while the source's posted burst goes on joins it without a post. Episodes whose peak is
   more than a day before the horizon (found in a backlog) are recorded, not posted (``alert_note =
   'historical'``); at most :data:`MAX_ALERTS_PER_RUN` posts a run, the rest summed up in one post.
5. **Forecasts** (``analytics.trend_forecasts``) for the busiest series with two weeks of history, when the run
   recomputed hours of the source (a run with nothing new keeps the last forecasts).

Heavy imports (numpy, psycopg) come in with the calls: the DAG file imports nothing of this at parse time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from pulse.windows import floor_hour

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: History read before the first recomputed hour: 4 weeks of same-hour-of-week baseline (+1 h).
BASELINE_SPAN = timedelta(days=28, hours=1)
#: Later hours whose baseline reads a recomputed hour (their scores are recomputed too).
RESCORE_SPAN = timedelta(days=28)
#: A first run reads at most this far back (the hot period of documents is 90 days).
FIRST_RUN_SPAN = timedelta(days=90)
#: Episodes older than this before the horizon are recorded, not posted (a backlog is not news).
ALERT_RECENCY = timedelta(hours=24)
MAX_ALERTS_PER_RUN = 10
#: Keys longer than this are cut (an index entry must stay small; keywords and names are far shorter).
MAX_KEY_CHARS = 200
#: Cells (series x hours) per scoring chunk: bounds memory on a first run over months of history.
CHUNK_CELLS = 4_000_000
#: Forecasts: series with at least this much history and this many documents a week, the busiest first.
FORECAST_MIN_HISTORY = timedelta(days=14)
FORECAST_MIN_WEEKLY_DOCS = 168
FORECAST_MAX_SERIES = 500
FORECAST_HORIZON = 24
FORECAST_METHOD = "seasonal_median_level"
LOCK_KEY = "pulse.trends"

DIMENSIONS = ("source", "topic", "entity", "ticker", "keyword", "repository")

SeriesKey = tuple[str, str]  # (dimension, key)


def hour_range(start: datetime, end: datetime) -> list[datetime]:
    """Hours from ``start`` (inclusive) to ``end`` (exclusive)."""
    out, h = [], floor_hour(start)
    while h < end:
        out.append(h)
        h += HOUR
    return out


@dataclass
class SourceResult:
    """What one run did for one source (the task's return value, one entry per source)."""

    source: str
    horizon: str | None = None
    new_hours: int = 0
    changed_hours: int = 0
    recomputed_hours: int = 0
    rescored_rows: int = 0
    series_rows: int = 0
    gap_hours: int = 0
    spike_hours: int = 0
    episodes_new: int = 0
    forecast_series: int = 0
    read_from: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Row:
    """One series hour as counted from the published views."""

    documents: int
    positive: int
    negative: int


@dataclass
class Episode:
    """A spike episode to alert on (a row of ``analytics.trend_spikes``)."""

    spike_id: int
    source: str
    dimension: str
    key: str
    metric: str
    direction: str
    episode_start: datetime
    peak_hour: datetime
    peak_value: float
    baseline: float | None
    peak_z: float | None
    documents: int
    baseline_basis: str
    top_documents: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------

_SERIES_SQL = """
WITH d AS (
    SELECT d.external_id, d.created_at, d.channel,
           date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00') AS hour,
           f.topic, f.keywords,
           coalesce(f.sentiment_label = 'positive', false) AS pos,
           coalesce(f.sentiment_label = 'negative', false) AS neg
      FROM published.documents d
      LEFT JOIN published.document_features f
        ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
     WHERE d.source = %(source)s AND d.created_at >= %(lo)s AND d.created_at < %(hi)s
       AND date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00') = ANY(%(hours)s)
), m AS (
    SELECT DISTINCT d.external_id, d.hour, d.pos, d.neg, m.entity_type, left(m.normalized, %(maxkey)s) AS key
      FROM d
      JOIN published.entity_mentions m
        ON m.source = %(source)s AND m.external_id = d.external_id AND m.created_at = d.created_at
     WHERE m.normalized IS NOT NULL AND m.normalized <> ''
)
SELECT 'source', %(source)s, hour, count(*), count(*) FILTER (WHERE pos), count(*) FILTER (WHERE neg)
  FROM d GROUP BY hour
UNION ALL
SELECT 'topic', left(topic, %(maxkey)s), hour, count(*), count(*) FILTER (WHERE pos), count(*) FILTER (WHERE neg)
  FROM d WHERE topic IS NOT NULL AND topic <> '' GROUP BY 2, hour
UNION ALL
SELECT 'entity', key, hour, count(DISTINCT external_id), count(DISTINCT external_id) FILTER (WHERE pos),
       count(DISTINCT external_id) FILTER (WHERE neg)
  FROM m GROUP BY key, hour
UNION ALL
SELECT 'ticker', key, hour, count(DISTINCT external_id), count(DISTINCT external_id) FILTER (WHERE pos),
       count(DISTINCT external_id) FILTER (WHERE neg)
  FROM m WHERE entity_type IN ('ticker', 'crypto') GROUP BY key, hour
UNION ALL
SELECT 'keyword', k.key, d.hour, count(DISTINCT d.external_id),
       count(DISTINCT d.external_id) FILTER (WHERE d.pos), count(DISTINCT d.external_id) FILTER (WHERE d.neg)
  FROM d, LATERAL (SELECT DISTINCT left(kw, %(maxkey)s) AS key FROM unnest(d.keywords) kw
                    WHERE kw IS NOT NULL AND kw <> '') k
 GROUP BY k.key, d.hour
UNION ALL
SELECT 'repository', left(channel, %(maxkey)s), hour, count(*), count(*) FILTER (WHERE pos),
       count(*) FILTER (WHERE neg)
  FROM d WHERE %(source)s = 'github' AND channel IS NOT NULL AND channel <> '' GROUP BY 2, hour
"""


def count_series(
    conn: psycopg.Connection[Any], source: str, hours: Sequence[datetime]
) -> dict[SeriesKey, dict[datetime, Row]]:
    """Documents and sentiment counts per series for ``hours`` of ``source``, from the published views."""
    out: dict[SeriesKey, dict[datetime, Row]] = {}
    if not hours:
        return out
    rows = conn.execute(
        _SERIES_SQL,
        {
            "source": source,
            "hours": list(hours),
            "lo": min(hours),
            "hi": max(hours) + HOUR,
            "maxkey": MAX_KEY_CHARS,
        },
    ).fetchall()
    for dimension, key, hour, docs, pos, neg in rows:
        out.setdefault((dimension, key), {})[hour] = Row(int(docs), int(pos), int(neg))
    return out


def classify_hours(
    conn: psycopg.Connection[Any], source: str, hours: Sequence[datetime]
) -> list[tuple[datetime, bool, str | None, int]]:
    """(hour, observed, gap reason, published documents) for each hour: observed means an ``ingested``
    coverage window overlaps it and no ``gap`` window does."""
    if not hours:
        return []
    rows = conn.execute(
        """
        WITH h AS (SELECT unnest(%(hours)s::timestamptz[]) AS hour),
        docs AS (
            SELECT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00+00') AS hour, count(*) AS n
              FROM published.documents
             WHERE source = %(source)s AND created_at >= %(lo)s AND created_at < %(hi)s
             GROUP BY 1
        )
        SELECT h.hour,
               EXISTS (SELECT 1 FROM ops.coverage c
                        WHERE c.source = %(source)s AND c.status = 'ingested'
                          AND c.window_start < h.hour + interval '1 hour' AND c.window_end > h.hour) AS ingested,
               (SELECT string_agg(DISTINCT coalesce(c.reason, 'gap'), ',' ORDER BY coalesce(c.reason, 'gap'))
                  FROM ops.coverage c
                 WHERE c.source = %(source)s AND c.status = 'gap'
                   AND c.window_start < h.hour + interval '1 hour' AND c.window_end > h.hour) AS gaps,
               coalesce(docs.n, 0)
          FROM h LEFT JOIN docs ON docs.hour = h.hour
         ORDER BY h.hour
        """,
        {"hours": list(hours), "source": source, "lo": min(hours), "hi": max(hours) + HOUR},
    ).fetchall()
    out = []
    for hour, ingested, gaps, docs in rows:
        observed = bool(ingested) and gaps is None
        reason = None if observed else (gaps or "no_coverage")
        out.append((hour, observed, reason, int(docs)))
    return out


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------


class Scored(NamedTuple):
    """Scores of one series hour, ready to write (a tuple: millions are made on a first run)."""

    basis: str
    baseline: float | None
    volume_z: float | None
    ratio: float | None
    baseline_sentiment: float | None
    sentiment_z: float | None
    volume_spike: bool
    sentiment_spike: bool


def _values(array: Any) -> list[float | None]:
    """A float array as Python floats, NaN and infinities as None (stored as NULL)."""
    import numpy as np

    clean = np.where(np.isfinite(array), array, np.nan)
    return [None if v != v else v for v in clean.tolist()]


def _num(value: float) -> float | None:
    import math

    return None if value is None or not math.isfinite(float(value)) else float(value)


def score_rows(
    series: Mapping[SeriesKey, Mapping[datetime, Row]],
    to_score: Mapping[SeriesKey, Iterable[datetime]],
    observed: Mapping[datetime, bool],
    start: datetime,
    end: datetime,
) -> dict[tuple[SeriesKey, datetime], Scored]:
    """Score the hours ``to_score`` of each series on the hourly matrix from ``start`` to ``end``.

    ``series`` holds every known row of those series in the span; ``observed`` each hour's coverage (a hour not
    in it is unobserved): an observed hour without a row is 0, an unobserved one NaN.

    The matrices are filled and read with numpy index arrays, not cell by cell: on a first run over 90 days
    (2.4 million series hours) the per-cell Python of an earlier version took 16 of the task's 84 seconds
    (docs/profiling.md).
    """
    import numpy as np

    from pulse.trends import detect

    hours = hour_range(start, end)
    col = {h: i for i, h in enumerate(hours)}
    obs = np.array([observed.get(h, False) for h in hours], dtype=bool)
    keys = [k for k in to_score if any(h in col for h in to_score[k])]
    out: dict[tuple[SeriesKey, datetime], Scored] = {}
    per_chunk = max(1, CHUNK_CELLS // max(len(hours), 1))
    names = np.array([detect.BASIS_NAMES[b] for b in sorted(detect.BASIS_NAMES)], dtype=object)
    for lo in range(0, len(keys), per_chunk):
        chunk = keys[lo : lo + per_chunk]
        rows_i: list[int] = []
        cols_j: list[int] = []
        cells: list[tuple[int, int, int]] = []
        for i, k in enumerate(chunk):
            for h, r in series.get(k, {}).items():
                j = col.get(h)
                if j is not None:
                    rows_i.append(i)
                    cols_j.append(j)
                    cells.append((r.documents, r.positive, r.negative))
        docs = np.where(obs[None, :], 0.0, np.nan).repeat(len(chunk), axis=0)
        pos, neg = docs.copy(), docs.copy()
        if cells:
            ri, cj = np.array(rows_i, dtype=np.int64), np.array(cols_j, dtype=np.int64)
            vals = np.array(cells, dtype=np.float64)
            keep = obs[cj]  # a gap hour stays NaN whatever it holds: its count is partial
            docs[ri[keep], cj[keep]] = vals[keep, 0]
            pos[ri[keep], cj[keep]] = vals[keep, 1]
            neg[ri[keep], cj[keep]] = vals[keep, 2]
        targets = [(i, k, h, col[h]) for i, k in enumerate(chunk) for h in to_score[k] if h in col]
        if not targets:
            continue
        wanted = sorted({t[3] for t in targets})
        at = np.array(wanted, dtype=np.int64)
        vol = detect.volume_scores(docs, at)
        sen = detect.sentiment_scores(docs, pos, neg, at)
        where = np.full(len(hours), -1, dtype=np.int64)
        where[at] = np.arange(len(wanted))
        ti = np.array([t[0] for t in targets], dtype=np.int64)
        tj = np.array([t[3] for t in targets], dtype=np.int64)
        tn = where[tj]
        # Scores read NaN in a gap hour, so it gets no verdict; its basis is "none" whatever its neighbours hold.
        basis = np.where(obs[tj], names[vol.basis[ti, tn].astype(np.int64)], "none").tolist()
        columns = [
            _values(vol.baseline[ti, tn]),
            _values(vol.z[ti, tn]),
            _values(vol.ratio[ti, tn]),
            _values(sen.baseline[ti, tn]),
            _values(sen.z[ti, tn]),
        ]
        vspike = vol.spike[ti, tn].tolist()
        sspike = sen.spike[ti, tn].tolist()
        for n, (_, k, h, _) in enumerate(targets):
            out[(k, h)] = Scored(
                basis[n], columns[0][n], columns[1][n], columns[2][n], columns[3][n], columns[4][n],
                vspike[n], sspike[n],
            )  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------------
# one source
# --------------------------------------------------------------------------------------------------


def _state(conn: psycopg.Connection[Any], source: str) -> tuple[datetime | None, datetime | None]:
    row = conn.execute(
        "SELECT audits_until, hours_until FROM ops.trends_state WHERE source = %s", (source,)
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _load_rows(
    conn: psycopg.Connection[Any],
    source: str,
    keys: Sequence[SeriesKey],
    start: datetime,
    end: datetime,
) -> dict[SeriesKey, dict[datetime, Row]]:
    """Stored rows of ``keys`` from ``start`` to ``end``."""
    out: dict[SeriesKey, dict[datetime, Row]] = {}
    if not keys:
        return out
    rows = conn.execute(
        """
        SELECT t.dimension, t.key, t.hour, t.documents, t.positive, t.negative
          FROM analytics.trend_series_hourly t
          JOIN unnest(%s::text[], %s::text[]) AS k(dimension, key) ON k.dimension = t.dimension AND k.key = t.key
         WHERE t.source = %s AND t.hour >= %s AND t.hour < %s
        """,
        ([k[0] for k in keys], [k[1] for k in keys], source, start, end),
    ).fetchall()
    for dimension, key, hour, docs, pos, neg in rows:
        out.setdefault((dimension, key), {})[hour] = Row(docs, pos, neg)
    return out


def _observed(
    conn: psycopg.Connection[Any], source: str, start: datetime, end: datetime
) -> dict[datetime, bool]:
    rows = conn.execute(
        "SELECT hour, observed FROM analytics.trend_source_hours WHERE source = %s AND hour >= %s AND hour < %s",
        (source, start, end),
    ).fetchall()
    return {h: bool(o) for h, o in rows}


def update_source(
    conn: psycopg.Connection[Any], source: str, published_until: datetime, now: datetime, run_id: str
) -> SourceResult:
    """Fold the new published hours of ``source`` into the trend tables (one transaction)."""
    res = SourceResult(source=source)
    horizon = floor_hour(min(published_until, floor_hour(now) + HOUR))
    res.horizon = horizon.isoformat()
    audits_until, hours_until = _state(conn, source)
    audits = conn.execute(
        """
        SELECT hour, published_at FROM quality.hour_audits
         WHERE source = %s AND published_at IS NOT NULL AND hour < %s AND hour >= %s
           AND (%s::timestamptz IS NULL OR published_at > %s::timestamptz)
        """,
        (source, horizon, horizon - FIRST_RUN_SPAN, audits_until, audits_until),
    ).fetchall()
    if hours_until is None:
        first = min((h for h, _ in audits), default=None)
        new_span = hour_range(first, horizon) if first else []
    else:
        new_span = hour_range(max(hours_until, horizon - FIRST_RUN_SPAN), horizon)
    new_set = set(new_span)
    changed = sorted({h for h, _ in audits} - new_set)
    res.new_hours, res.changed_hours = len(new_span), len(changed)
    next_audits = max((p for _, p in audits), default=audits_until)
    recompute = sorted(new_set | set(changed))
    if not recompute:
        _save_state(conn, source, next_audits, max(hours_until or horizon, horizon), run_id)
        return res
    res.read_from = recompute[0].isoformat()

    # 1. Source hours: observed or not, and the source's own volume.
    classified = classify_hours(conn, source, recompute)
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO analytics.trend_source_hours (source, hour, observed, gap_reason, documents, computed_at)
            VALUES (%s, %s, %s, %s, %s, now())
            ON CONFLICT (source, hour) DO UPDATE SET observed = EXCLUDED.observed,
                gap_reason = EXCLUDED.gap_reason, documents = EXCLUDED.documents, computed_at = now()
            """,
            [(source, h, o, r, n) for h, o, r, n in classified],
        )
    res.gap_hours = sum(1 for _, o, _, _ in classified if not o)

    # 2. Series counts of the recomputed hours (replacing what was there).
    fresh = count_series(conn, source, recompute)
    old_keys = conn.execute(
        "SELECT DISTINCT dimension, key FROM analytics.trend_series_hourly WHERE source = %s AND hour = ANY(%s)",
        (source, recompute),
    ).fetchall()
    conn.execute(
        "DELETE FROM analytics.trend_series_hourly WHERE source = %s AND hour = ANY(%s)", (source, recompute)
    )
    keys = sorted(set(fresh) | {(d, k) for d, k in old_keys})

    # 3. Scores: the recomputed hours, and the later stored hours whose baseline reads them.
    lo = recompute[0] - BASELINE_SPAN
    hi = min(recompute[-1] + RESCORE_SPAN + HOUR, horizon)
    stored = _load_rows(conn, source, keys, lo, hi)
    for k, rows in fresh.items():
        stored.setdefault(k, {}).update(rows)
    rescore: dict[SeriesKey, list[datetime]] = {}
    recompute_set = set(recompute)
    for k in keys:
        mine = stored.get(k, {})
        rescore[k] = sorted(h for h in mine if h >= recompute[0])
    observed = _observed(conn, source, lo, hi)
    scores = score_rows(stored, rescore, observed, lo, hi)

    rows_out = []
    for k in keys:
        for h in rescore[k]:
            r = stored[k][h]
            s = scores.get((k, h))
            if s is None:
                continue
            rows_out.append(
                (
                    source, k[0], k[1], h, r.documents, r.positive, r.negative, s.basis, s.baseline, s.volume_z,
                    s.ratio, s.baseline_sentiment, s.sentiment_z, s.volume_spike, s.sentiment_spike,
                )
            )  # fmt: skip
    later = [(k, h) for k in keys for h in rescore[k] if h not in recompute_set]
    if later:
        # Later hours keep their counts; only their scores change: replace them like the rest.
        conn.execute(
            """
            DELETE FROM analytics.trend_series_hourly t
             USING unnest(%s::text[], %s::text[], %s::timestamptz[]) AS x(dimension, key, hour)
             WHERE t.source = %s AND t.dimension = x.dimension AND t.key = x.key AND t.hour = x.hour
            """,
            ([k[0] for k, _ in later], [k[1] for k, _ in later], [h for _, h in later], source),
        )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY analytics.trend_series_hourly (source, dimension, key, hour, documents, positive, negative,"
            " baseline_basis, baseline_documents, volume_z, volume_ratio, baseline_sentiment, sentiment_z,"
            " volume_spike, sentiment_spike) FROM STDIN"
        ) as copy,
    ):
        for row in rows_out:
            copy.write_row(row)
    res.series_rows = sum(len(v) for v in fresh.values())
    res.recomputed_hours = len(recompute)
    res.rescored_rows = len(later)

    # 4. The series registry.
    if fresh:
        reg = [(source, d, k, min(rows), max(rows)) for (d, k), rows in fresh.items()]
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO analytics.trend_series (source, dimension, key, first_hour, last_hour)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (source, dimension, key) DO UPDATE SET
                    first_hour = least(analytics.trend_series.first_hour, EXCLUDED.first_hour),
                    last_hour = greatest(analytics.trend_series.last_hour, EXCLUDED.last_hour)
                """,
                reg,
            )

    # 5. Episodes of the spiking hours.
    spikes = [row for row in rows_out if row[13] or row[14]]
    res.spike_hours = len(spikes)
    res.episodes_new = record_episodes(conn, source, spikes, run_id)
    _save_state(conn, source, next_audits, horizon, run_id)
    return res


def _save_state(
    conn: psycopg.Connection[Any],
    source: str,
    audits_until: datetime | None,
    hours_until: datetime,
    run_id: str,
) -> None:
    conn.execute(
        """
        INSERT INTO ops.trends_state (source, audits_until, hours_until, dag_run_id)
        VALUES (%s, coalesce(%s, '-infinity'::timestamptz), %s, %s)
        ON CONFLICT (source) DO UPDATE SET audits_until = EXCLUDED.audits_until,
            hours_until = EXCLUDED.hours_until, updated_at = now(), dag_run_id = EXCLUDED.dag_run_id
        """,
        (source, audits_until, hours_until, run_id),
    )


# --------------------------------------------------------------------------------------------------
# episodes
# --------------------------------------------------------------------------------------------------

#: Spiking hours at most this far apart belong to one episode (one quiet hour between them).
EPISODE_GAP = timedelta(hours=2)


def record_episodes(
    conn: psycopg.Connection[Any], source: str, spikes: Sequence[tuple[Any, ...]], run_id: str
) -> int:
    """Merge spiking hours into ``analytics.trend_spikes`` episodes; return how many episodes are new."""
    new = 0
    for row in sorted(spikes, key=lambda r: (r[1], r[2], r[3])):
        (
            _,
            dimension,
            key,
            hour,
            docs,
            pos,
            neg,
            basis,
            baseline,
            vz,
            _ratio,
            base_sent,
            sz,
            vspike,
            sspike,
        ) = row
        metrics = []
        if vspike:
            metrics.append(("volume", "up", float(docs), baseline, vz))
        if sspike:
            net = (pos - neg) / docs
            metrics.append(("sentiment", "up" if (sz or 0) > 0 else "down", net, base_sent, sz))
        for metric, direction, value, base, z in metrics:
            hit = conn.execute(
                """
                SELECT spike_id, abs(coalesce(peak_z, 0)) FROM analytics.trend_spikes
                 WHERE source = %s AND dimension = %s AND key = %s AND metric = %s
                   AND episode_start - %s <= %s AND episode_end + %s >= %s
                 ORDER BY episode_start LIMIT 1
                """,
                (source, dimension, key, metric, EPISODE_GAP, hour, EPISODE_GAP, hour),
            ).fetchone()
            if hit:
                spike_id, peak = hit
                conn.execute(
                    """
                    UPDATE analytics.trend_spikes SET
                        episode_start = least(episode_start, %(h)s), episode_end = greatest(episode_end, %(h)s),
                        peak_hour = CASE WHEN %(z)s > %(peak)s THEN %(h)s ELSE peak_hour END,
                        peak_value = CASE WHEN %(z)s > %(peak)s THEN %(v)s ELSE peak_value END,
                        baseline = CASE WHEN %(z)s > %(peak)s THEN %(b)s ELSE baseline END,
                        documents = CASE WHEN %(z)s > %(peak)s THEN %(n)s ELSE documents END,
                        peak_z = CASE WHEN %(z)s > %(peak)s THEN %(zs)s ELSE peak_z END
                     WHERE spike_id = %(id)s
                    """,
                    {"h": hour, "z": abs(z or 0), "peak": float(peak), "v": value, "b": base, "n": docs,
                     "zs": z, "id": spike_id},
                )  # fmt: skip
                continue
            top = top_documents(conn, source, dimension, key, hour)
            conn.execute(
                """
                INSERT INTO analytics.trend_spikes (source, dimension, key, metric, direction, episode_start,
                    episode_end, peak_hour, peak_value, baseline, peak_z, documents, baseline_basis, top_documents,
                    dag_run_id)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (source, dimension, key, metric, episode_start) DO NOTHING
                """,
                (source, dimension, key, metric, direction, hour, hour, hour, value, base, z, docs, basis,
                 json.dumps(top), run_id),
            )  # fmt: skip
            new += 1
    return new


def top_documents(
    conn: psycopg.Connection[Any], source: str, dimension: str, key: str, hour: datetime, limit: int = 3
) -> list[dict[str, Any]]:
    """The documents of the hour that make the series, best engagement (score) first: no author, a short text."""
    match = {
        "source": "true",
        "topic": "f.topic = %(key)s",
        "keyword": "%(key)s = ANY(f.keywords)",
        "repository": "d.channel = %(key)s",
        "entity": (
            "EXISTS (SELECT 1 FROM published.entity_mentions m WHERE m.source = d.source"
            " AND m.external_id = d.external_id AND m.created_at = d.created_at AND m.normalized = %(key)s)"
        ),
        "ticker": (
            "EXISTS (SELECT 1 FROM published.entity_mentions m WHERE m.source = d.source"
            " AND m.external_id = d.external_id AND m.created_at = d.created_at AND m.normalized = %(key)s"
            " AND m.entity_type IN ('ticker', 'crypto'))"
        ),
    }[dimension]
    rows = conn.execute(
        f"""
        SELECT d.external_id, d.kind, coalesce(nullif(d.title, ''), d.body, '') AS text, d.url, d.score,
               f.sentiment_label
          FROM published.documents d
          LEFT JOIN published.document_features f
            ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
         WHERE d.source = %(source)s AND d.created_at >= %(h)s AND d.created_at < %(h)s + interval '1 hour'
           AND {match}
         ORDER BY d.score DESC NULLS LAST, d.created_at, d.external_id
         LIMIT %(limit)s
        """,  # the condition comes from the fixed table above; values are parameters
        {"source": source, "h": hour, "key": key, "limit": limit},
    ).fetchall()
    return [
        {
            "external_id": ext,
            "kind": kind,
            "text": _snippet(text),
            "url": url,
            "score": score,
            "sentiment": label,
        }
        for ext, kind, text, url, score, label in rows
    ]


def _snippet(text: str | None, limit: int = 140) -> str:
    """First line-ish of a text for Slack: control characters out, at most ``limit`` characters."""
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in (text or "")).split())
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _describe(ep: Episode) -> str:
    """One line of numbers for an episode (the lead's body, or a line under "moving with it")."""
    what = f"{ep.dimension} `{ep.key}`" if ep.dimension != "source" else f"all of `{ep.source}`"
    if ep.metric == "volume":
        ratio = ep.peak_value / max(ep.baseline or 0.0, 1.0)
        return (
            f"{what}: *{ep.peak_value:.0f} documents* against a baseline of *{_fmt(ep.baseline, 1)}*: "
            f"x{ratio:.1f}, robust z = {_fmt(ep.peak_z, 1)}"
        )
    return (
        f"{what}: net sentiment *{ep.peak_value:+.2f}* against *{_fmt(ep.baseline)}* "
        f"({ep.direction}), z = {_fmt(ep.peak_z, 1)}, {ep.documents} documents"
    )


def _lead_rank(ep: Episode) -> tuple[int, int, float]:
    """The episode a post leads with: a volume spike of a term before the source's own; then the largest ratio."""
    specific = 0 if ep.dimension == "source" else 1
    volume = 1 if ep.metric == "volume" else 0
    strength = (
        (ep.peak_value / max(ep.baseline or 0.0, 1.0)) if ep.metric == "volume" else abs(ep.peak_z or 0)
    )
    return (specific, volume, strength)


def spike_alert(group: Sequence[Episode], run_id: str | None) -> Any:
    """One Slack post for the episodes of one source that began in the same hour (one burst of documents moves
    its topic, keywords and entities together): the lead with its baseline, sample size and top documents, the
    others listed under it."""
    from pulse.alerts import Alert

    ordered = sorted(group, key=_lead_rank, reverse=True)
    ep, others = ordered[0], ordered[1:]
    # The source's own movement first (the size of the burst), then the terms, strongest first.
    others = [o for o in others if o.dimension == "source"] + [o for o in others if o.dimension != "source"]
    what = f"{ep.dimension} `{ep.key}`" if ep.dimension != "source" else f"all of `{ep.source}`"
    span = f"{ep.peak_hour:%Y-%m-%d %H:00}-{(ep.peak_hour + HOUR):%H:00} UTC"
    basis = {
        "same_hour_of_week": "the median of the same hour of the week over the previous 4 weeks",
        "same_hour_of_day": "the median of the same hour over the previous 7 days (young series)",
    }.get(ep.baseline_basis, ep.baseline_basis)
    if ep.metric == "volume":
        ratio = ep.peak_value / max(ep.baseline or 0.0, 1.0)
        title = f":chart_with_upwards_trend: *Volume spike*: {what} on `{ep.source}`"
        lines = [
            f"*{ep.peak_value:.0f} documents* in {span} against a baseline of *{_fmt(ep.baseline, 1)}* "
            f"({basis}): x{ratio:.1f}, robust z = {_fmt(ep.peak_z, 1)}.",
        ]
    else:
        arrow = "up" if ep.direction == "up" else "down"
        title = f":left_right_arrow: *Sentiment swing {arrow}*: {what} on `{ep.source}`"
        lines = [
            f"Net sentiment *{ep.peak_value:+.2f}* in {span} against *{_fmt(ep.baseline)}* ({basis}), "
            f"z = {_fmt(ep.peak_z, 1)}.",
        ]
    lines.append(
        f"Sample: {ep.documents} documents in the peak hour. Episode began {ep.episode_start:%H:00} UTC."
    )
    if others:
        lines.append(f"Moving with it ({len(others)}):")
        lines += [f"• {_describe(o)}" for o in others[:8]]
        if len(others) > 8:
            lines.append(f"• and {len(others) - 8} more (analytics.trend_spikes)")
    links: list[tuple[str, str]] = []
    lines.append("Top documents:")
    for doc in ep.top_documents[:3]:
        label = doc.get("text") or doc.get("external_id") or "document"
        lines.append(f"• {label}" + (f" ({doc['sentiment']})" if doc.get("sentiment") else ""))
        if doc.get("url"):
            links.append((f"{doc.get('kind') or 'document'} {doc.get('external_id')}", str(doc["url"])))
    key = ep.key.replace("'", "''")
    lines.append(
        "_Series: `SELECT * FROM analytics.trend_hourly WHERE source = "
        f"'{ep.source}' AND dimension = '{ep.dimension}' AND key = '{key}' ORDER BY hour DESC`_"
    )
    return Alert(
        route="trends",
        kind="trend_spike",
        title=title,
        dag_id="trends",
        run_id=run_id,
        dedup_key=(
            f"trend_spike|{ep.source}|{ep.episode_start:%Y-%m-%dT%H}|{ep.metric}|{ep.dimension}|{ep.key}"
        ),
        window=span,
        lines=lines,
        links=links,
    )


def alert_new_episodes(
    conn: psycopg.Connection[Any], horizons: Mapping[str, datetime], run_id: str | None
) -> dict[str, int]:
    """Post the episodes not alerted yet, one post per source and start hour; older ones are marked historical.

    A new episode of a source whose posted burst is still going on (an alerted episode that began earlier and
    spiked within the last two hours) joins that burst instead of making a post of its own
    (``alert_note``). Returns counts: ``posts``, ``episodes`` posted, ``historical``, ``joined``, ``capped``
    and ``failed`` episodes.
    """
    from pulse.alerts import Alert, post_alert

    rows = conn.execute(
        """
        SELECT spike_id, source, dimension, key, metric, direction, episode_start, peak_hour, peak_value,
               baseline, peak_z, documents, baseline_basis, top_documents
          FROM analytics.trend_spikes
         WHERE alerted_at IS NULL AND alert_note IS NULL
         ORDER BY spike_id
        """
    ).fetchall()
    counts = {"posts": 0, "episodes": 0, "historical": 0, "joined": 0, "capped": 0, "failed": 0}
    groups: dict[tuple[str, datetime], list[Episode]] = {}
    for r in rows:
        ep = Episode(*r[:13], top_documents=list(r[13] or []))
        horizon = horizons.get(ep.source)
        if horizon is not None and ep.peak_hour < horizon - ALERT_RECENCY:
            conn.execute(
                "UPDATE analytics.trend_spikes SET alert_note = 'historical' WHERE spike_id = %s",
                (ep.spike_id,),
            )
            counts["historical"] += 1
            continue
        groups.setdefault((ep.source, ep.episode_start), []).append(ep)
    # Oldest burst first, so a later group of the same source can join one posted a moment ago.
    capped: list[Episode] = []
    attempts = 0
    for (source, start), group in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        ids = [e.spike_id for e in group]
        burst = conn.execute(
            """
            SELECT spike_id FROM analytics.trend_spikes
             WHERE source = %s AND alerted_at IS NOT NULL AND episode_start < %s AND episode_end + %s >= %s
             ORDER BY episode_start, spike_id LIMIT 1
            """,
            (source, start, EPISODE_GAP, start),
        ).fetchone()
        if burst:
            # The source's burst was posted already and goes on: a series joining it later is not news.
            conn.execute(
                "UPDATE analytics.trend_spikes SET alert_note = %s WHERE spike_id = ANY(%s)",
                (f"joined the burst of spike {burst[0]}, posted already", ids),
            )
            counts["joined"] += len(group)
            continue
        if attempts >= MAX_ALERTS_PER_RUN:
            capped += group
            continue
        attempts += 1
        if post_alert(spike_alert(group, run_id), conn=conn):
            conn.execute(
                "UPDATE analytics.trend_spikes SET alerted_at = now() WHERE spike_id = ANY(%s)", (ids,)
            )
            counts["posts"] += 1
            counts["episodes"] += len(group)
        else:
            conn.execute(
                "UPDATE analytics.trend_spikes SET alert_note = 'not posted (duplicate or Slack error: task log)'"
                " WHERE spike_id = ANY(%s)",
                (ids,),
            )
            counts["failed"] += len(group)
    if capped:
        listing = [f"• {_describe(e)} on `{e.source}`" for e in capped[:20]]
        summary = Alert(
            route="trends",
            kind="trend_spike_summary",
            title=f":chart_with_upwards_trend: {len(capped)} more spike episodes this run (over the cap of "
            f"{MAX_ALERTS_PER_RUN} posts)",
            dag_id="trends",
            run_id=run_id,
            dedup_key=f"trend_spike_summary|{run_id}",
            lines=[
                *listing,
                "_All of them: `SELECT * FROM analytics.trend_spikes WHERE alert_note = 'capped'`_",
            ],
        )
        post_alert(summary, conn=conn)
        conn.execute(
            "UPDATE analytics.trend_spikes SET alert_note = 'capped' WHERE spike_id = ANY(%s)",
            ([e.spike_id for e in capped],),
        )
        counts["capped"] = len(capped)
    return counts


# --------------------------------------------------------------------------------------------------
# forecasts, tickers
# --------------------------------------------------------------------------------------------------


def update_forecasts(conn: psycopg.Connection[Any], source: str, horizon: datetime) -> int:
    """Forecast the next 24 hours of the busiest series with two weeks of history; return how many series."""
    import numpy as np

    from pulse.trends import detect

    start = horizon - timedelta(days=35)
    busy = conn.execute(
        """
        SELECT t.dimension, t.key FROM analytics.trend_series_hourly t
          JOIN analytics.trend_series s ON s.source = t.source AND s.dimension = t.dimension AND s.key = t.key
         WHERE t.source = %s AND t.hour >= %s AND t.hour < %s AND s.first_hour <= %s
         GROUP BY t.dimension, t.key HAVING sum(t.documents) >= %s
         ORDER BY sum(t.documents) DESC, t.dimension, t.key LIMIT %s
        """,
        (source, horizon - timedelta(days=7), horizon, horizon - FORECAST_MIN_HISTORY, FORECAST_MIN_WEEKLY_DOCS,
         FORECAST_MAX_SERIES),
    ).fetchall()  # fmt: skip
    if not busy:
        return 0
    keys = [(d, k) for d, k in busy]
    stored = _load_rows(conn, source, keys, start, horizon)
    observed = _observed(conn, source, start, horizon)
    hours = hour_range(start, horizon)
    obs = np.array([observed.get(h, False) for h in hours], dtype=bool)
    vals = np.where(obs[None, :], 0.0, np.nan).repeat(len(keys), axis=0)
    col = {h: i for i, h in enumerate(hours)}
    for i, k in enumerate(keys):
        for h, r in stored.get(k, {}).items():
            j = col.get(h)
            if j is not None and obs[j]:
                vals[i, j] = r.documents
    fc = detect.forecast(vals, FORECAST_HORIZON)
    rows = []
    for i, (dimension, key) in enumerate(keys):
        for j in range(FORECAST_HORIZON):
            mean = _num(fc.mean[i, j])
            if mean is None:
                continue
            rows.append(
                (source, dimension, key, horizon + j * HOUR, horizon, mean, _num(fc.lower80[i, j]) or 0.0,
                 _num(fc.upper80[i, j]) or mean, _num(fc.lower95[i, j]) or 0.0, _num(fc.upper95[i, j]) or mean,
                 FORECAST_METHOD)
            )  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO analytics.trend_forecasts (source, dimension, key, hour, origin, forecast, lower_80,
                upper_80, lower_95, upper_95, method, computed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (source, dimension, key, hour) DO UPDATE SET origin = EXCLUDED.origin,
                forecast = EXCLUDED.forecast, lower_80 = EXCLUDED.lower_80, upper_80 = EXCLUDED.upper_80,
                lower_95 = EXCLUDED.lower_95, upper_95 = EXCLUDED.upper_95, method = EXCLUDED.method,
                computed_at = now()
            """,
            rows,
        )
    return len({(r[1], r[2]) for r in rows})


def refresh_ticker_entities(conn: psycopg.Connection[Any]) -> int:
    """Which entity each published market symbol is, from the enrichment gazetteer."""
    from pulse.enrich.entities import symbols

    known = symbols()
    rows = conn.execute("SELECT DISTINCT symbol FROM published.market_bars").fetchall()
    pairs = [(s, *known[s.upper()]) for (s,) in rows if s and s.upper() in known]
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO analytics.ticker_entities (symbol, entity_type, entity) VALUES (%s, %s, %s)
            ON CONFLICT (symbol) DO UPDATE SET entity_type = EXCLUDED.entity_type, entity = EXCLUDED.entity
            """,
            pairs,
        )
    return len(pairs)


# --------------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------------


def run_trends(context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``trends`` task: every source, then alerts, forecasts and the ticker map. Returns a summary."""
    from pulse.warehouse.db import connect
    from pulse.windows import utcnow

    now = utcnow()
    run_id = str(context.get("run_id") or "manual")
    summary: dict[str, Any] = {"sources": {}}
    horizons: dict[str, datetime] = {}
    with connect() as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
            # The horizon never runs past the current hour ('infinity' when everything is released).
            cap = floor_hour(now) + HOUR
            # Sources of documents only: market bars, weather and repository snapshots have their own views.
            sources = conn.execute(
                """
                SELECT p.source, least(p.published_until, %s) FROM quality.publish_state p
                 WHERE EXISTS (SELECT 1 FROM core.documents d WHERE d.source = p.source)
                 ORDER BY p.source
                """,
                (cap,),
            ).fetchall()
            for source, until in sources:
                res = update_source(conn, source, until, now, run_id)
                summary["sources"][source] = res.as_dict()
                if res.horizon:
                    horizons[source] = datetime.fromisoformat(res.horizon)
            for source, horizon in horizons.items():
                # Forecasts change only with the data: a run that recomputed nothing keeps the last ones (they
                # were most of a quiet hourly run's time: docs/profiling.md).
                if summary["sources"][source]["recomputed_hours"]:
                    summary["sources"][source]["forecast_series"] = update_forecasts(conn, source, horizon)
            summary["ticker_entities"] = refresh_ticker_entities(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK_KEY,))
            summary["alerts"] = alert_new_episodes(conn, horizons, run_id)
    log.info("trends: %s", json.dumps(summary, default=str))
    return summary

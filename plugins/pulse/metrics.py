"""Pulse's pipeline metrics, ``GET /pulse/metrics`` on Airflow's api-server, in Prometheus text exposition.

Pull, not push: Pulse's facts (runs, budget, breaker, publication ...) already live in the warehouse, so a
``prometheus_client`` custom :class:`PulseCollector` runs SQL when Prometheus scrapes (docs/metrics.md is the
catalogue). Each scrape gets a fresh ``CollectorRegistry`` (no state kept between scrapes, no stale series).

Bounded: one autocommit connection with a :data:`CONNECT_TIMEOUT_S` connect timeout and a
:data:`STATEMENT_TIMEOUT_MS` statement timeout. The queries are grouped (:data:`GROUPS`); a group that fails
(a timeout, a missing table) gives ``pulse_metrics_scrape_errors{collector=<group>} 1`` and the other groups
still answer; an unreachable warehouse gives ``pulse_warehouse_up 0`` and an error for every group, never an
HTTP 500. Error texts are logged redacted (:func:`pulse.health.redact`), never exported.

Labels are low-cardinality: source, stream-free reasons, check names, enrichers, statuses; never a run id, a
document id or an error text. "Now" is the pipeline clock (:func:`pulse.windows.utcnow`); durations of the
scrape itself use ``time.perf_counter``.

Auth (:func:`authorized`): when ``PULSE_METRICS_TOKEN`` is set, a request must carry ``Authorization: Bearer
<token>`` (compared in constant time); when unset, the endpoint is open, like Airflow's ``/api/v2/monitor/health``
(aggregates only, no personal data).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from pulse.warehouse.db import WAREHOUSE_CONN_ID

__all__ = [
    "CONNECT_TIMEOUT_S",
    "GROUPS",
    "STATEMENT_TIMEOUT_MS",
    "TOKEN_ENV",
    "PulseCollector",
    "authorized",
    "render",
]

log = logging.getLogger(__name__)

#: libpq connect timeout (seconds; libpq's minimum is 2).
CONNECT_TIMEOUT_S = 3
#: Statement timeout of every metrics query (milliseconds).
STATEMENT_TIMEOUT_MS = 3000
#: The optional static scrape token.
TOKEN_ENV = "PULSE_METRICS_TOKEN"
#: The circuit breaker's states (one-hot in ``pulse_breaker_state``).
BREAKER_STATES = ("closed", "open", "half_open")

Rows = list[tuple[Any, ...]]
Group = Callable[[Any, datetime], list[Metric]]


def authorized(header: str | None) -> bool:
    """Whether a request with this ``Authorization`` header may scrape (always, when no token is set)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _connect() -> Any:
    from pulse.warehouse.db import connect

    conn = connect(WAREHOUSE_CONN_ID, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
    return conn


def _rows(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Rows:
    return list(conn.execute(sql, params).fetchall())


def _num(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _add_rows(family: Any, rows: Rows) -> None:
    """One sample per row: the row's leading columns are the label values, its last the value."""
    for *labels, value in rows:
        family.add_metric([str(label) for label in labels], _num(value))


# ------------------------------------------------------------------------------------------------
# the groups: each reads the warehouse and returns its metric families (or raises)
# ------------------------------------------------------------------------------------------------


def ingest(conn: Any, now: datetime) -> list[Metric]:
    """``ops.ingest_runs``: runs by outcome, the last loaded run's duration, pages and items."""
    runs = CounterMetricFamily(
        "pulse_ingest_runs",
        "Ingest runs recorded in ops.ingest_runs, by outcome (loaded: the load finished; not_loaded: "
        "extracted, load failed or still running).",
        labels=["source", "outcome"],
    )
    _add_rows(
        runs,
        _rows(
            conn,
            "SELECT source, CASE WHEN loaded_at IS NOT NULL THEN 'loaded' ELSE 'not_loaded' END, count(*)"
            " FROM ops.ingest_runs GROUP BY 1, 2 ORDER BY 1, 2",
        ),
    )
    duration = GaugeMetricFamily(
        "pulse_ingest_run_duration_seconds",
        "The last loaded ingest run of each source: seconds from the end of its extract to the end of its "
        "load (ops.ingest_runs.loaded_at - extracted_at).",
        labels=["source"],
    )
    pages = CounterMetricFamily("pulse_pages_fetched", "Pages fetched by ingest runs.", labels=["source"])
    loaded = CounterMetricFamily(
        "pulse_items_loaded", "Items upserted into core (new, changed or unchanged).", labels=["source"]
    )
    changed = CounterMetricFamily(
        "pulse_items_changed", "Rows inserted or rewritten because their content changed.", labels=["source"]
    )
    last_loaded = GaugeMetricFamily(
        "pulse_last_loaded_seconds",
        "Seconds since the last ingest run of the source finished its load (pipeline clock).",
        labels=["source"],
    )
    for source, n_pages, n_loaded, n_changed, last_duration, last_at in _rows(
        conn,
        """
        SELECT source, sum(pages), sum(loaded), sum(changed),
               (array_agg(extract(epoch FROM loaded_at - extracted_at) ORDER BY loaded_at DESC)
                    FILTER (WHERE loaded_at IS NOT NULL AND extracted_at IS NOT NULL))[1],
               max(loaded_at)
          FROM ops.ingest_runs GROUP BY source ORDER BY source
        """,
    ):
        pages.add_metric([source], _num(n_pages))
        loaded.add_metric([source], _num(n_loaded))
        changed.add_metric([source], _num(n_changed))
        if last_duration is not None:
            duration.add_metric([source], max(_num(last_duration), 0.0))
        if last_at is not None:
            last_loaded.add_metric([source], max((now - last_at).total_seconds(), 0.0))
    return [runs, duration, pages, loaded, changed, last_loaded]


def quarantine(conn: Any, now: datetime) -> list[Metric]:
    """``quality.quarantine`` by source and reason: every quarantined item, and those still open."""
    total = CounterMetricFamily(
        "pulse_items_quarantined",
        "Items in quality.quarantine (one row per bad item, re-fetches update it), by reason code.",
        labels=["source", "reason"],
    )
    open_ = GaugeMetricFamily(
        "pulse_quarantine_open",
        "Quarantined items not resolved yet (resolved_at IS NULL), by reason code.",
        labels=["source", "reason"],
    )
    for source, reason, n, n_open in _rows(
        conn,
        "SELECT source, reason_code, count(*), count(*) FILTER (WHERE resolved_at IS NULL)"
        " FROM quality.quarantine GROUP BY 1, 2 ORDER BY 1, 2",
    ):
        total.add_metric([source, reason], _num(n))
        open_.add_metric([source, reason], _num(n_open))
    return [total, open_]


def sources(conn: Any, now: datetime) -> list[Metric]:
    """``analytics.source_health``: API budget, circuit breaker, held windows, freshness of the last success."""
    left = GaugeMetricFamily(
        "pulse_budget_calls_left",
        "API calls left now in the tightest quota period (analytics.source_health.budget_calls_left).",
        labels=["source"],
    )
    limit = GaugeMetricFamily(
        "pulse_budget_calls_limit", "Calls allowed in that quota period.", labels=["source"]
    )
    period = GaugeMetricFamily("pulse_budget_period_seconds", "That quota period.", labels=["source"])
    breaker_open = GaugeMetricFamily(
        "pulse_breaker_open",
        "1 when the source's circuit breaker is open (runs skip the API).",
        labels=["source"],
    )
    breaker_state = GaugeMetricFamily(
        "pulse_breaker_state",
        "The circuit breaker's state, one-hot: closed, open or half_open.",
        labels=["source", "state"],
    )
    failures = GaugeMetricFamily(
        "pulse_breaker_consecutive_failures", "Failed ingest runs in a row.", labels=["source"]
    )
    held = GaugeMetricFamily(
        "pulse_held_windows",
        "Audited windows whose checks failed and that nobody released (they block publication).",
        labels=["source"],
    )
    freshness = GaugeMetricFamily(
        "pulse_freshness_seconds",
        "Seconds since the source's last successful ingest run (quality.source_health.last_success_at; "
        "pipeline clock). Absent when it never succeeded.",
        labels=["source"],
    )
    for row in _rows(
        conn,
        "SELECT source, circuit_state, consecutive_failures, budget_calls_left, budget_calls,"
        " budget_period_s, held_windows, last_success_at FROM analytics.source_health ORDER BY source",
    ):
        source, state, n_failures, calls_left, calls, period_s, n_held, last_success = row
        if calls is not None:
            left.add_metric([source], _num(calls_left))
            limit.add_metric([source], _num(calls))
            period.add_metric([source], _num(period_s))
        breaker_open.add_metric([source], 1.0 if state == "open" else 0.0)
        for candidate in BREAKER_STATES:
            breaker_state.add_metric([source, candidate], 1.0 if state == candidate else 0.0)
        failures.add_metric([source], _num(n_failures))
        held.add_metric([source], _num(n_held))
        if last_success is not None:
            freshness.add_metric([source], max((now - last_success).total_seconds(), 0.0))
    return [left, limit, period, breaker_open, breaker_state, failures, held, freshness]


def coverage(conn: Any, now: datetime) -> list[Metric]:
    """``ops.coverage`` gaps by source and reason."""
    gaps = GaugeMetricFamily(
        "pulse_coverage_gap_windows",
        "Windows a source stream could not hold (ops.coverage status gap), by reason.",
        labels=["source", "reason"],
    )
    _add_rows(
        gaps,
        _rows(
            conn,
            "SELECT source, coalesce(reason, 'unknown'), count(*) FROM ops.coverage WHERE status = 'gap'"
            " GROUP BY 1, 2 ORDER BY 1, 2",
        ),
    )
    return [gaps]


def publication(conn: Any, now: datetime) -> list[Metric]:
    """``quality.publish_state``: publication lag per source."""
    lag = GaugeMetricFamily(
        "pulse_publication_lag_seconds",
        "now - quality.publish_state.published_until (pipeline clock; 0 for a horizon at infinity or ahead).",
        labels=["source"],
    )
    from pulse.quality.publish import horizons

    for source, published in horizons(conn).items():
        if published is None:  # infinity: everything released
            lag.add_metric([source], 0.0)
        else:
            lag.add_metric([source], max((now - published).total_seconds(), 0.0))
    return [lag]


def quality_checks(conn: Any, now: datetime) -> list[Metric]:
    """``quality.check_results``: every recorded outcome, by check and status (totals, not a time window)."""
    results = CounterMetricFamily(
        "pulse_quality_check_results",
        "Quality check results recorded in quality.check_results (all rows), by check name and status.",
        labels=["check", "status"],
    )
    _add_rows(
        results,
        _rows(
            conn,
            "SELECT check_name, status, count(*) FROM quality.check_results GROUP BY 1, 2 ORDER BY 1, 2",
        ),
    )
    return [results]


def enrichment(conn: Any, now: datetime) -> list[Metric]:
    """``enriched.enrichment_errors`` by enricher and ``enriched.document_features`` rows."""
    errors = GaugeMetricFamily(
        "pulse_enrichment_errors",
        "Documents whose current enrichment failed in an enricher (re-enrichment replaces them).",
        labels=["enricher"],
    )
    _add_rows(
        errors, _rows(conn, "SELECT enricher, count(*) FROM enriched.enrichment_errors GROUP BY 1 ORDER BY 1")
    )
    (n_docs,) = _rows(conn, "SELECT count(*) FROM enriched.document_features")[0]
    docs = GaugeMetricFamily(
        "pulse_enriched_documents",
        "Rows in enriched.document_features (retention drops old partitions: it can fall).",
        value=_num(n_docs),
    )
    return [errors, docs]


def exports_archives(conn: Any, now: datetime) -> list[Metric]:
    """``ops.exports`` and ``ops.archives``."""
    (n_exports, n_rows) = _rows(conn, "SELECT count(*), coalesce(sum(rows), 0) FROM ops.exports")[0]
    exports = CounterMetricFamily(
        "pulse_exports", "Mart-days exported (ops.exports: one row per mart and day).", value=_num(n_exports)
    )
    export_rows = CounterMetricFamily(
        "pulse_export_rows", "Rows in the latest export of each mart and day.", value=_num(n_rows)
    )
    archives = CounterMetricFamily(
        "pulse_archives", "Archives written by retention (ops.archives), by status.", labels=["status"]
    )
    archive_bytes = GaugeMetricFamily(
        "pulse_archive_bytes", "Bytes of those archives, by status.", labels=["status"]
    )
    for status, n, size in _rows(
        conn, "SELECT status, count(*), coalesce(sum(bytes), 0) FROM ops.archives GROUP BY 1 ORDER BY 1"
    ):
        archives.add_metric([status], _num(n))
        archive_bytes.add_metric([status], _num(size))
    return [exports, export_rows, archives, archive_bytes]


def trends(conn: Any, now: datetime) -> list[Metric]:
    """``analytics.trend_spikes`` episodes by source and metric."""
    spikes = CounterMetricFamily(
        "pulse_trend_spike_episodes",
        "Spike episodes detected (analytics.trend_spikes), by source and metric (volume, sentiment).",
        labels=["source", "metric"],
    )
    _add_rows(
        spikes,
        _rows(
            conn, "SELECT source, metric, count(*) FROM analytics.trend_spikes GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    )
    return [spikes]


def warehouse(conn: Any, now: datetime) -> list[Metric]:
    """Connections to the warehouse database by state, and rows in default partitions."""
    connections = GaugeMetricFamily(
        "pulse_warehouse_connections",
        "Backends connected to the warehouse database (pg_stat_activity), by state.",
        labels=["state"],
    )
    _add_rows(
        connections,
        _rows(
            conn,
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() GROUP BY 1 ORDER BY 1",
        ),
    )
    defaults = GaugeMetricFamily(
        "pulse_default_partition_rows",
        "Rows in each partitioned table's default partition (ops.default_partition_rows(); normally 0).",
        labels=["table"],
    )
    _add_rows(defaults, _rows(conn, "SELECT parent::text, rows FROM ops.default_partition_rows() ORDER BY 1"))
    return [connections, defaults]


#: Every group, in the order of the exposition: name (the ``collector`` label of scrape errors) -> group.
GROUPS: dict[str, Group] = {
    "ingest": ingest,
    "quarantine": quarantine,
    "sources": sources,
    "coverage": coverage,
    "publication": publication,
    "quality_checks": quality_checks,
    "enrichment": enrichment,
    "exports_archives": exports_archives,
    "trends": trends,
    "warehouse": warehouse,
}


# ------------------------------------------------------------------------------------------------
# the collector and the exposition
# ------------------------------------------------------------------------------------------------


class PulseCollector(Collector):
    """Reads the warehouse on each :meth:`collect` (one connection, each group wrapped)."""

    def __init__(self, groups: dict[str, Group] | None = None) -> None:
        self.groups = GROUPS if groups is None else groups

    def collect(self) -> Iterator[Metric]:
        from pulse.health import redact
        from pulse.windows import utcnow

        started = time.perf_counter()
        now = utcnow()
        errors = GaugeMetricFamily(
            "pulse_metrics_scrape_errors",
            "1 when this group of metrics could not be read on this scrape (its metrics are missing).",
            labels=["collector"],
        )
        families: list[Metric] = []
        conn = None
        try:
            conn = _connect()
        except Exception as exc:  # an unreachable warehouse is a metric, never a 500
            log.warning("pulse metrics: warehouse unreachable: %s: %s", type(exc).__name__, redact(str(exc)))
        try:
            for name, group in self.groups.items():
                if conn is None:
                    errors.add_metric([name], 1.0)
                    continue
                try:
                    families.extend(group(conn, now))
                    errors.add_metric([name], 0.0)
                except Exception as exc:  # one failing group never stops the others
                    log.warning(
                        "pulse metrics: %s failed: %s: %s", name, type(exc).__name__, redact(str(exc))
                    )
                    errors.add_metric([name], 1.0)
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    log.debug("pulse metrics: closing the connection failed", exc_info=True)
        yield GaugeMetricFamily(
            "pulse_warehouse_up",
            "1 when the warehouse answered a connection.",
            value=0.0 if conn is None else 1.0,
        )
        yield from families
        yield errors
        yield GaugeMetricFamily(
            "pulse_metrics_scrape_duration_seconds",
            "How long this scrape took to read the warehouse.",
            value=time.perf_counter() - started,
        )


def render(groups: dict[str, Group] | None = None) -> bytes:
    """One scrape: a fresh registry with a :class:`PulseCollector`, in the text exposition format."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PulseCollector(groups))
    return generate_latest(registry)

"""One run of the ``quality`` DAG: run checks, audit windows, publish, and post one alert for the failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulse.params import BadParam
from pulse.quality.checks import CheckResult

#: The run's params cannot work (retrying would not help): checked in :mod:`pulse.params`.
BadParams = BadParam


def run_quality(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the quality task does; returns a summary (``critical`` lists failed critical checks)."""
    from pulse.params import validate
    from pulse.quality.checks import is_window_check, load_checks, record, run_check
    from pulse.quality.publish import advance, audit, hours, plan, release
    from pulse.sources.base import SOURCES
    from pulse.warehouse.db import connect
    from pulse.warehouse.rollups import refresh as refresh_rollups
    from pulse.windows import utcnow

    now = utcnow()
    run_id = str(context["run_id"])
    # Every param checked before anything runs (window, its length in hours, source, release's who and why).
    checked = validate("quality", params, now=now)
    start, end = checked["window_start"], checked["window_end"]
    sources = [checked["source"]] if checked["source"] else sorted(SOURCES)
    checks = load_checks()

    audits = []
    released = 0
    with connect() as conn:
        record_budget_limits(conn)
        results: list[CheckResult] = [run_check(conn, c, now) for c in checks if not is_window_check(c)]
        if checked["release"]:
            released = release(
                conn, sources, start, end, checked["released_by"], checked["reason"], dag_run_id=run_id
            )
        for source in sources:
            windows = hours(start, end) if start and end else plan(conn, source, now)
            for window in windows:
                audits.append(audit(conn, source, window, checks, now, run_id))
            advance(conn, source, run_id)
        results += [r for a in audits for r in a.results]
        record(conn, results, run_id)
        # Publication changed which rows analysts see: fold the hours it touched into the views' rollups.
        rollups_refreshed = refresh_rollups(conn)
        horizons = dict(
            conn.execute(
                "SELECT source, published_until FROM quality.publish_state WHERE source = ANY(%s)", (sources,)
            ).fetchall()
        )

    failed = [r for r in results if r.status != "pass"]
    held = [a for a in audits if a.status == "held"]
    if failed:
        _alert(failed, held, len(results), context)
    return {
        "checks": len(results),
        "failed": len(failed),
        "windows_audited": len(audits),
        "windows_held": [f"{a.source} {a.start:%Y-%m-%d %H:%M}-{a.end:%H:%M}" for a in held],
        "released": released,
        "rollup_keys_refreshed": rollups_refreshed,
        "published_until": {s: t.isoformat() for s, t in horizons.items()},
        "critical": sorted({r.name for r in failed if r.severity == "critical"}),
    }


def record_budget_limits(conn: Any) -> None:
    """Write the API quotas as configured now to ``ops.api_budget_limits`` (``analytics.source_health`` compares
    spending with them). A sources file that cannot be read is the ingest runs' failure to report: the limits
    recorded before stay."""
    import logging

    from pulse.budget import budgets_from_config
    from pulse.config import ConfigError, load_all

    try:
        limits = budgets_from_config(load_all())
    except ConfigError as exc:
        logging.getLogger(__name__).warning("API budget limits not recorded: %s", exc)
        return
    rows = [(source, period, calls) for source, pairs in sorted(limits.items()) for period, calls in pairs]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM ops.api_budget_limits")
        cur.executemany(
            "INSERT INTO ops.api_budget_limits (source, period_s, calls) VALUES (%s, %s, %s)", rows
        )


def _alert(failed: list[CheckResult], held: list[Any], total: int, context: Mapping[str, Any]) -> None:
    from pulse.alerts import Alert, describe_window, post_alert

    def where(r: CheckResult) -> str:
        if r.scope == "window" and r.window_start and r.window_end:
            return f" [{r.source} {r.window_start:%Y-%m-%d %H:%M}-{r.window_end:%H:%M}]"
        return ""

    lines = [
        f"• `{r.name}`{where(r)} ({r.severity}, {r.status}): observed {r.observed} vs {r.threshold}. {r.detail}"
        for r in failed[:20]
    ]
    if len(failed) > 20:
        lines.append(f"… and {len(failed) - 20} more in quality.check_results")
    if held:
        lines.append(
            "*Held back from the analyst views*: "
            + ", ".join(f"{a.source} {a.start:%Y-%m-%d %H:%M}-{a.end:%H:%M}" for a in held[:10])
        )
    ti = context.get("ti")
    names = sorted({f"{r.name}:{r.source or ''}:{r.status}" for r in failed})
    post_alert(
        Alert(
            route="quality",
            kind="quality_failed",
            title=f":warning: *{len(failed)} data quality check(s) failed* of {total}",
            dag_id=getattr(ti, "dag_id", None),
            run_id=str(context.get("run_id")),
            window=describe_window(context),
            lines=lines,
            links=[("Task log", ti.log_url)] if ti is not None else [],
            dedup_key="quality_failed|" + ",".join(names),
        )
    )

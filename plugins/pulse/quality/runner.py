"""One run of the ``quality`` DAG: run checks, audit windows, publish, and post one alert for the failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulse.quality.checks import CheckResult


class BadParams(ValueError):
    """The run's params cannot work (retrying would not help)."""


def run_quality(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the quality task does; returns a summary (``critical`` lists failed critical checks)."""
    from pulse.quality.checks import is_window_check, load_checks, record, run_check
    from pulse.quality.publish import advance, audit, hours, plan, release
    from pulse.sources.base import SOURCES
    from pulse.warehouse.db import connect
    from pulse.windows import _as_utc, utcnow

    now = utcnow()
    run_id = str(context["run_id"])
    checks = load_checks()
    start, end = _as_utc(params.get("window_start")), _as_utc(params.get("window_end"))
    if bool(start) != bool(end):
        raise BadParams("give both window_start and window_end, or neither")
    sources = [params["source"]] if params.get("source") else sorted(SOURCES)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise BadParams(f"unknown source(s) {unknown}; one of {sorted(SOURCES)}")

    audits = []
    released = 0
    with connect() as conn:
        results: list[CheckResult] = [run_check(conn, c, now) for c in checks if not is_window_check(c)]
        if params.get("release"):
            if not (start and end):
                raise BadParams("release needs window_start and window_end")
            if (
                not str(params.get("released_by") or "").strip()
                or not str(params.get("reason") or "").strip()
            ):
                raise BadParams("release needs released_by and reason")
            released = release(
                conn,
                sources,
                start,
                end,
                str(params.get("released_by") or ""),
                str(params.get("reason") or ""),
            )
        for source in sources:
            windows = hours(start, end) if start and end else plan(conn, source, now)
            for window in windows:
                audits.append(audit(conn, source, window, checks, now, run_id))
            advance(conn, source, run_id)
        results += [r for a in audits for r in a.results]
        record(conn, results, run_id)
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
        "published_until": {s: t.isoformat() for s, t in horizons.items()},
        "critical": sorted({r.name for r in failed if r.severity == "critical"}),
    }


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

"""Every DAG's run params in one place: the trigger form's JSON schema and the check at run time.

Two layers, built from the same limits:

* **The form** (:func:`dag_params`): Airflow ``Param`` objects with a JSON schema (type, ``format``,
  ``enum``, ``minimum``/``maximum``, lengths). Airflow 3.3.2 validates a run's conf against them when the
  run is created: ``SerializedDAG.create_dagrun`` calls ``self.params.deep_merge(conf).validate()``, so
  the UI's trigger form, ``POST /api/v2/dags/{dag_id}/dagRuns`` (HTTP 400 naming the param), the CLI,
  backfills' ``dag_run_conf`` and ``dag.test(run_conf=...)`` all refuse such conf before a run exists.
* **The run** (:func:`validate`): what a schema cannot say (``window_start`` before ``window_end``, at
  most so many hours, a whole hour, not in the future, conf keys that are not params: Airflow turns those
  into new, unchecked params), and everything again for params that never met today's form (a run
  created before the DAG's params changed, then cleared; an operator executed directly). Every task that
  reads params calls it first; a bad value raises :class:`BadParam`, an ``AirflowFailException``: the task
  fails at once, without retries, and the message names the param.

The limits (module constants) are documented in each DAG's ``doc_md`` and in the form's descriptions.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from pulse.sources.base import SOURCES, Reason
from pulse.windows import Window, utcnow

#: No source serves data from before this (Alpha Vantage's intraday history starts in 2000-01).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: An ingest window may end at most this far after now (a daily DAG's "today"); later is not data yet.
MAX_FUTURE = timedelta(days=1)
#: The longest window one ingest run fetches; longer periods are a backfill (one run per interval).
MAX_INGEST_WINDOW = timedelta(days=31)
#: The most hours one ``quality`` run re-audits or releases (per source: 6 sources give 1,008 audits).
MAX_AUDIT_HOURS = 168
#: The most days a hot period (``retention``) or a restored period (``restore_archive``) may be given.
MAX_DAYS = 3650
MAX_NAME_CHARS = 200
MAX_REASON_CHARS = 2000

EXAMPLE = "2026-11-28T11:00:00Z"
#: Export marts (pulse.export.run.MARTS; a unit test keeps the two equal).
MARTS = ("daily_volume", "daily_sentiment", "entity_mentions_daily")
#: Tables restore_archive can bring back (include/retention.yaml; a unit test keeps the two equal).
RESTORABLE_TABLES = (
    "core.documents",
    "enriched.document_features",
    "enriched.entity_mentions",
    "enriched.places",
    "core.market_bars",
    "core.weather_observations",
    "core.github_repo_snapshots",
    "raw.api_responses",
)

# RFC 3339 (what JSON schema's "date-time" format means), ASCII digits only, the whole string.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_NAIVE_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_show = reprlib.Repr()
_show.maxstring = 80
_show.maxother = 80
_show.maxlist = _show.maxdict = 5


class BadParam(AirflowFailException, ValueError):
    """A run's params cannot work: the task fails at once (no retry can fix them); the message names the param.

    Also a ``ValueError``, so callers that caught bad values before keep catching them.
    """

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(problem if problem.startswith(param) else f"{param}: {problem}")
        self.param = param
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.param, self.problem))


# --- the form -----------------------------------------------------------------------------------------------


def _window_param(end: bool, rule: str) -> Param:
    which = "end (exclusive)" if end else "start (inclusive)"
    return Param(
        None,
        type=["null", "string"],
        format="date-time",
        description=f"Window {which}, a UTC date-time such as {EXAMPLE}. {rule}",
    )


def _ingest_params() -> dict[str, Param]:
    rule = (
        "Give both or neither (neither: the DAG's default window). At most "
        f"{MAX_INGEST_WINDOW.days} days, from {EARLIEST:%Y-%m-%d}, ending at most a day after now."
    )
    return {"window_start": _window_param(False, rule), "window_end": _window_param(True, rule)}


def _quality_params() -> dict[str, Param]:
    rule = (
        f"Whole UTC hours, both or neither, at most {MAX_AUDIT_HOURS} hours, ending no later than now "
        "(neither: the hours ready to audit)."
    )
    return {
        "window_start": _window_param(False, rule),
        "window_end": _window_param(True, rule),
        "source": Param(
            None,
            type=["null", "string"],
            enum=[None, *sorted(SOURCES)],
            description="Audit only this source (empty: every source)",
        ),
        "release": Param(
            False, type="boolean", description="Release the held hours of the window as they are"
        ),
        "released_by": Param(
            None,
            type=["null", "string"],
            maxLength=MAX_NAME_CHARS,
            description="Who releases (required with release, only with release)",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            maxLength=MAX_REASON_CHARS,
            description="Why (required with release, only with release)",
        ),
    }


def _replay_params() -> dict[str, Param]:
    codes = sorted(str(r) for r in Reason)
    rule = f"Optional; from {EARLIEST:%Y-%m-%d}; with both, start before end."
    return {
        "source": Param("reddit", type="string", enum=sorted(SOURCES), description="Source to replay"),
        "reason_codes": Param(
            [],
            type=["null", "array"],
            items={"type": "string", "enum": codes},
            uniqueItems=True,
            examples=codes,
            description="Only quarantine rows with these reason codes (empty: all)",
        ),
        "window_start": _window_param(False, "Raw pages whose window overlaps this one. " + rule),
        "window_end": _window_param(True, rule),
    }


def _days_param(what: str) -> Param:
    return Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=MAX_DAYS,
        description=f"Hot days for {what}, 1 to {MAX_DAYS} (empty: include/retention.yaml)",
    )


def _retention_params() -> dict[str, Param]:
    return {
        "documents_days": _days_param("documents"),
        "facts_days": _days_param("facts"),
        "raw_days": _days_param("raw pages"),
        "dry_run": Param(False, type="boolean", description="Only list what would be archived"),
    }


def _restore_params() -> dict[str, Param]:
    return {
        "table": Param(
            "core.documents", type="string", enum=list(RESTORABLE_TABLES), description="The table to restore"
        ),
        "period": Param(
            "2026-01-01",
            type="string",
            format="date",
            description="First day of the period (UTC), YYYY-MM-DD: the 1st of a month, or any day for "
            "raw.api_responses",
        ),
        "keep_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=MAX_DAYS,
            description=f"Keep it hot this many days (1 to {MAX_DAYS})",
        ),
    }


def _export_params() -> dict[str, Param]:
    return {
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Re-export this UTC day (YYYY-MM-DD, before today); empty: the days due since the last "
            "export",
        ),
        "marts": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "enum": list(MARTS)},
            uniqueItems=True,
            examples=list(MARTS),
            description=f"Only these marts ({', '.join(MARTS)}); empty: all",
        ),
    }


_FORMS = {
    "ingest": _ingest_params,
    "quality": _quality_params,
    "replay_quarantine": _replay_params,
    "retention": _retention_params,
    "restore_archive": _restore_params,
    "export": _export_params,
    "none": dict,
}


def kind_of(dag_id: str) -> str:
    """Which params a DAG of ``dags/`` takes (``none``: it takes none)."""
    if dag_id.startswith("ingest_"):
        return "ingest"
    return dag_id if dag_id in _FORMS and dag_id not in ("ingest", "none") else "none"


def dag_params(kind: str) -> dict[str, Param]:
    """The ``params=`` of a DAG: fresh ``Param`` objects with the JSON schema of the trigger form."""
    return _FORMS[kind]()


# --- the run: one value --------------------------------------------------------------------------------------


def _text(name: str, value: Any, *, limit: int) -> str:
    if not isinstance(value, str):
        raise BadParam(name, f"expected a string, got {_show.repr(value)}")
    if "\x00" in value:
        raise BadParam(name, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadParam(name, "is not valid Unicode (a lone surrogate)") from None
    if len(value) > limit:
        raise BadParam(name, f"longer than {limit} characters")
    return value


def parse_datetime(name: str, value: Any) -> datetime | None:
    """An RFC 3339 date-time with a time zone (``Z`` or an offset) as UTC; ``None`` when not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParam(name, f"expected a date-time string such as {EXAMPLE}, got {_show.repr(value)}")
    if not value.strip():
        raise BadParam(name, "is empty: leave it unset (null) instead")
    text = value.upper()
    if not _DATE_TIME.fullmatch(text):
        if _NAIVE_DATE_TIME.fullmatch(text):
            raise BadParam(name, f"{_show.repr(value)} has no time zone: add Z for UTC, e.g. {EXAMPLE}")
        raise BadParam(
            name, f"{_show.repr(value)} is not a date-time such as {EXAMPLE} (RFC 3339, with a zone)"
        )
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        as_utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadParam(name, f"{_show.repr(value)} is not a valid date-time: {exc}") from None
    if as_utc < EARLIEST:
        raise BadParam(
            name, f"{as_utc.isoformat()} is before {EARLIEST:%Y-%m-%d}: no source has data that old"
        )
    return as_utc


def parse_date(name: str, value: Any) -> date | None:
    """A ``YYYY-MM-DD`` date from 2000 on; ``None`` when not given."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise BadParam(name, f"expected a date YYYY-MM-DD, got {_show.repr(value)}")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise BadParam(name, f"{value!r} is not a date: {exc}") from None
    if day < EARLIEST.date():
        raise BadParam(name, f"{day} is before {EARLIEST:%Y-%m-%d}: no source has data that old")
    return day


def parse_int(name: str, value: Any, *, low: int, high: int) -> int:
    """A whole number in ``[low, high]`` (``7.0`` is 7; booleans, NaN, infinities and fractions are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParam(name, f"expected a whole number from {low} to {high}, got {_show.repr(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise BadParam(name, f"expected a whole number from {low} to {high}, got {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise BadParam(name, f"{value} is out of range: from {low} to {high}")
    return value


def parse_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadParam(name, f"expected true or false, got {_show.repr(value)}")
    return value


def _choices(name: str, value: Any, known: Iterable[str]) -> list[str] | None:
    """A list of distinct names out of ``known``; ``None`` for null or an empty list (meaning: all)."""
    known = sorted(known)
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise BadParam(name, f"expected a list of {known}, got {_show.repr(value)}")
    bad = [v for v in value if not isinstance(v, str) or v not in known]
    if bad:
        raise BadParam(name, f"unknown value(s) {_show.repr(bad)}; each one of {known}")
    if len(set(value)) != len(value):
        raise BadParam(name, f"lists a value twice: {_show.repr(value)}")
    return list(value)


def _source(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in SOURCES:
        raise BadParam(name, f"unknown source {_show.repr(value)}; one of {sorted(SOURCES)}")
    return value


def _window_pair(params: Mapping[str, Any], *, both: bool) -> tuple[datetime | None, datetime | None]:
    start = parse_datetime("window_start", params.get("window_start"))
    end = parse_datetime("window_end", params.get("window_end"))
    if both and (start is None) != (end is None):
        raise BadParam("window_start/window_end", "give both window_start and window_end, or neither")
    if start is not None and end is not None and start >= end:
        raise BadParam(
            "window_start/window_end",
            f"window_start {start.isoformat()} is not before window_end {end.isoformat()}: "
            "an inverted or empty window",
        )
    return start, end


def _not_after(name: str, value: datetime | None, latest: datetime, why: str) -> None:
    if value is not None and value > latest:
        raise BadParam(name, f"{value.isoformat()} is after {latest.isoformat()}: {why}")


# --- the run: one DAG's params -------------------------------------------------------------------------------


def _check_ingest(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    start, end = _window_pair(p, both=True)
    _not_after("window_end", end, now + MAX_FUTURE, "data that does not exist yet cannot be fetched")
    if start is not None and end is not None and end - start > MAX_INGEST_WINDOW:
        raise BadParam(
            "window_start/window_end",
            f"the window spans {end - start}; one run fetches at most {MAX_INGEST_WINDOW.days} days: "
            "backfill longer periods (one run per interval)",
        )
    return {"window_start": start, "window_end": end}


def _check_quality(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    start, end = _window_pair(p, both=True)
    for name, value in (("window_start", start), ("window_end", end)):
        if value is not None and value != value.replace(minute=0, second=0, microsecond=0):
            raise BadParam(name, f"{value.isoformat()} is not a whole UTC hour: audits cover whole hours")
    _not_after("window_end", end, now, "an hour that has not ended cannot be audited")
    if start is not None and end is not None and end - start > timedelta(hours=MAX_AUDIT_HOURS):
        hours = int((end - start) / timedelta(hours=1))
        raise BadParam(
            "window_start/window_end",
            f"the window spans {hours:,} hours; one run re-audits at most {MAX_AUDIT_HOURS} hours "
            f"({MAX_AUDIT_HOURS // 24} days) per source: split it into several runs",
        )
    source = None if p.get("source") is None else _source("source", p.get("source"))
    release = parse_bool("release", p.get("release", False))
    who, why = (
        None if p.get(name) is None else _text(name, p[name], limit=limit).strip() or None
        for name, limit in (("released_by", MAX_NAME_CHARS), ("reason", MAX_REASON_CHARS))
    )
    if release:
        if start is None:
            raise BadParam("release", "release needs window_start and window_end: the hours to release")
        if who is None or why is None:
            raise BadParam("release", "release needs released_by and reason: who releases the hours, and why")
    elif who is not None or why is not None:
        raise BadParam(
            "released_by/reason",
            "given without release: true, so nothing would be released (set release, or clear them)",
        )
    return {
        "window_start": start,
        "window_end": end,
        "source": source,
        "release": release,
        "released_by": who,
        "reason": why,
    }


def _check_replay(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    start, end = _window_pair(p, both=False)
    why = "no raw page belongs to a window that far ahead (leave window_end unset for no upper bound)"
    _not_after("window_start", start, now + MAX_FUTURE, why)
    _not_after("window_end", end, now + MAX_FUTURE, why)
    return {
        "source": _source("source", p.get("source")),
        "reason_codes": _choices("reason_codes", p.get("reason_codes"), (str(r) for r in Reason)),
        "window_start": start,
        "window_end": end,
    }


def _check_retention(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: None if p.get(name) is None else parse_int(name, p[name], low=1, high=MAX_DAYS)
        for name in ("documents_days", "facts_days", "raw_days")
    }
    out["dry_run"] = parse_bool("dry_run", p.get("dry_run", False))
    return out


def _check_restore(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    table = p.get("table")
    if not isinstance(table, str) or table not in RESTORABLE_TABLES:
        raise BadParam("table", f"unknown table {_show.repr(table)}; one of {list(RESTORABLE_TABLES)}")
    period = parse_date("period", p.get("period"))
    if period is None:
        raise BadParam("period", "required: the first day of the period, YYYY-MM-DD")
    if period > now.date():
        raise BadParam("period", f"{period} is in the future (today is {now.date()} UTC)")
    if table != "raw.api_responses" and period.day != 1:
        raise BadParam("period", f"{table} is archived per month: give the 1st, {period:%Y-%m}-01")
    keep = parse_int("keep_days", p.get("keep_days", 7), low=1, high=MAX_DAYS)
    return {"table": table, "period": period, "keep_days": keep}


def _check_export(p: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    day = parse_date("day", p.get("day"))
    if day is not None and day >= now.date():
        raise BadParam("day", f"{day} has not ended yet (today is {now.date()} UTC)")
    return {"day": day, "marts": _choices("marts", p.get("marts"), MARTS)}


_CHECKS = {
    "ingest": _check_ingest,
    "quality": _check_quality,
    "replay_quarantine": _check_replay,
    "retention": _check_retention,
    "restore_archive": _check_restore,
    "export": _check_export,
    "none": lambda p, now: {},
}


def validate(
    kind: str,
    params: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    declared: Iterable[str] = (),
) -> dict[str, Any]:
    """The run's params of a DAG of ``kind`` (see :func:`kind_of`), checked and parsed; raises :class:`BadParam`.

    Keys missing from ``params`` take their defaults. A key that is neither one of the kind's params nor in
    ``declared`` (the DAG's own ``params``) is refused: a typo such as ``window_strat`` must not silently run
    the default window. ``now`` is the pipeline clock (:func:`pulse.windows.utcnow`).
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise BadParam("conf", f"expected an object of params, got {_show.repr(params)}")
    known = set(_FORMS[kind]()) | set(declared)
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        takes = f"it takes only {sorted(known)}" if known else "it takes none"
        names = ", ".join(k if k.isidentifier() else _show.repr(k) for k in unknown[:5])
        raise BadParam(names, f"not a param of this DAG ({takes}); check the spelling")
    return _CHECKS[kind](params, now or utcnow())


def validate_context(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`validate` on a task's context: its ``params``, allowing the keys its DAG declares."""
    dag = context.get("dag")
    declared = getattr(dag, "params", None) or {}
    return validate(kind, context.get("params") or {}, declared=list(declared))


def ingest_window(params: Mapping[str, Any], now: datetime | None = None) -> Window | None:
    """The hand-picked window of an ingest run (``window_start``/``window_end``), or ``None`` when not given."""
    checked = _check_ingest(params or {}, now or utcnow())
    if checked["window_start"] is None:
        return None
    return Window(checked["window_start"], checked["window_end"])


def reject_any_params(context: Mapping[str, Any]) -> None:
    """``pre_execute`` hook of the tasks of DAGs that take no params: any conf key fails the run at once."""
    validate_context("none", context)

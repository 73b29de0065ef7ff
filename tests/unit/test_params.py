"""The shared params check (pulse.params): known bad params, and arbitrary JSON thrown at every param.

The property: whatever JSON a user, the REST API or a cleared old run hands a param, the check either returns a
sane value or raises BadParam (an AirflowFailException naming the param): never OverflowError, TypeError, a
plain ValueError or anything else that Airflow would retry. The pipeline clock is pinned by tests/conftest.py
(PULSE_NOW=2026-11-28T12:05Z), so "now" is the same on any day.
"""

from __future__ import annotations

import copy
import math
import os
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.params import (
    EARLIEST,
    MARTS,
    MAX_AUDIT_HOURS,
    MAX_DAYS,
    MAX_FUTURE,
    MAX_INGEST_WINDOW,
    RESTORABLE_TABLES,
    BadParam,
    dag_params,
    ingest_window,
    kind_of,
    validate,
)
from pulse.sources.base import SOURCES, Reason
from pulse.windows import utcnow

KINDS = ("ingest", "quality", "replay_quarantine", "retention", "restore_archive", "export", "none")
NOW = utcnow()
CODES = {str(r) for r in Reason}
#: 300 examples per property in `make test`; the fast lane (`make test-fast` sets PULSE_FAST_LANE) runs a tenth.
PROPERTY = settings(
    max_examples=30 if os.environ.get("PULSE_FAST_LANE") else 300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- strategies: any JSON, and JSON that looks almost right ---------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
_aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets)
date_time_like = (
    _aware.map(lambda d: d.isoformat())
    | _aware.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
    | st.datetimes().map(lambda d: d.isoformat())  # no time zone
    | st.from_regex(
        r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2})?(\.\d{1,12})?([Zz]|[+-]\d{2}:\d{2})?\n?\Z",
        fullmatch=True,
    )
    | st.sampled_from(["", " ", "now", "2026-11-28", "2026-13-01T00:00:00Z", "NaN", "\x00", "\ud800"])
)
date_like = (
    st.dates(min_value=date(1, 1, 1)).map(date.isoformat)
    | st.from_regex(r"\A\d{4}-\d{2}-\d{2}\n?\Z", fullmatch=True)
    | st.sampled_from(["", "2026-02-30", "0000-01-01", "2026-1-1", "yesterday"])
)
whole_numbers = st.integers(min_value=-10, max_value=MAX_DAYS + 10) | st.sampled_from(
    [0, -1, 10**20, 7.0, 7.5, math.nan, math.inf, -math.inf, True, False, "7", None]
)
names = st.sampled_from([*sorted(SOURCES), "", "Reddit", "twitter", " reddit"])
#: Per param: the values most likely to find a crash, besides any JSON at all.
NEAR_MISSES: dict[str, Any] = {
    "window_start": date_time_like,
    "window_end": date_time_like,
    "source": names,
    "release": st.sampled_from([True, False, "true", 1, 0, None]),
    "released_by": st.text(max_size=300),
    "reason": st.text(max_size=300),
    "reason_codes": st.lists(st.sampled_from([*sorted(CODES), "nope", ""]), max_size=4),
    "documents_days": whole_numbers,
    "facts_days": whole_numbers,
    "raw_days": whole_numbers,
    "dry_run": st.sampled_from([True, False, "false", 0, None]),
    "table": st.sampled_from([*RESTORABLE_TABLES, "core.nope", "", "pg_catalog.pg_authid"]),
    "period": date_like,
    "keep_days": whole_numbers,
    "day": date_like,
    "marts": st.lists(st.sampled_from([*MARTS, "nope"]), max_size=4),
}
PARAMS = sorted({(kind, name) for kind in KINDS for name in dag_params(kind)})


def _assert_window(start: Any, end: Any, *, both: bool, latest: datetime) -> None:
    for value in (start, end):
        assert value is None or (isinstance(value, datetime) and value.utcoffset() == timedelta(0))
        assert value is None or EARLIEST <= value <= latest
    if both:
        assert (start is None) == (end is None)
    if start is not None and end is not None:
        assert start < end


def assert_sane(kind: str, out: dict[str, Any]) -> None:
    """What each kind's check may return: nothing a task could not use as is."""
    if kind == "ingest":
        _assert_window(out["window_start"], out["window_end"], both=True, latest=NOW + MAX_FUTURE)
        if out["window_start"] is not None:
            assert out["window_end"] - out["window_start"] <= MAX_INGEST_WINDOW
    elif kind == "quality":
        start, end = out["window_start"], out["window_end"]
        _assert_window(start, end, both=True, latest=NOW)
        if start is not None:
            assert end - start <= timedelta(hours=MAX_AUDIT_HOURS)
            for value in (start, end):
                assert value == value.replace(minute=0, second=0, microsecond=0)
        assert out["source"] is None or out["source"] in SOURCES
        assert isinstance(out["release"], bool)
        for key in ("released_by", "reason"):
            value = out[key]
            assert value is None or (isinstance(value, str) and value.strip() and "\x00" not in value)
            if value is not None:
                value.encode("utf-8")
            assert (value is not None) == out["release"]
        assert not out["release"] or start is not None
    elif kind == "replay_quarantine":
        assert out["source"] in SOURCES
        codes = out["reason_codes"]
        assert codes is None or (codes and set(codes) <= CODES and len(set(codes)) == len(codes))
        _assert_window(out["window_start"], out["window_end"], both=False, latest=NOW + MAX_FUTURE)
    elif kind == "retention":
        for key in ("documents_days", "facts_days", "raw_days"):
            value = out[key]
            assert value is None or (type(value) is int and 1 <= value <= MAX_DAYS)
        assert isinstance(out["dry_run"], bool)
    elif kind == "restore_archive":
        assert out["table"] in RESTORABLE_TABLES
        period = out["period"]
        assert isinstance(period, date) and EARLIEST.date() <= period <= NOW.date()
        assert period.day == 1 or out["table"] == "raw.api_responses"
        assert type(out["keep_days"]) is int and 1 <= out["keep_days"] <= MAX_DAYS
    elif kind == "export":
        assert out["day"] is None or EARLIEST.date() <= out["day"] < NOW.date()
        marts = out["marts"]
        assert marts is None or (marts and set(marts) <= set(MARTS) and len(set(marts)) == len(marts))
    else:
        assert out == {}


def check(kind: str, params: Any) -> dict[str, Any] | None:
    """Run the check; return its result (asserted sane), or None for a BadParam. Anything else fails the test."""
    try:
        out = validate(kind, params)
    except BadParam as exc:
        error = exc
    else:
        assert_sane(kind, out)
        return out
    assert str(error).startswith(error.param) and error.param.strip()
    return None


# --- properties -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), PARAMS, ids=[f"{k}.{n}" for k, n in PARAMS])
@PROPERTY
@given(data=st.data())
def test_any_json_for_a_param_is_a_sane_value_or_a_bad_param(kind: str, name: str, data: Any) -> None:
    value = data.draw(json_values | NEAR_MISSES[name], label=name)
    # The other params as the trigger form fills them, or as a hand-written conf leaves them out.
    defaults = {k: p.value for k, p in dag_params(kind).items()}
    if data.draw(st.booleans(), label="pair"):  # windows come in pairs: give the other end a sane value
        defaults.update(
            {
                "window_start": "2026-11-28T11:00:00Z",
                "window_end": "2026-11-28T12:00:00Z",
                "period": "2026-01-01",
            }
        )
    others = {k: v for k, v in defaults.items() if k in dag_params(kind) and k != name}
    check(kind, {**others, name: value})


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(conf=json_values)
def test_any_json_as_the_whole_conf_is_sane_or_a_bad_param(kind: str, conf: Any) -> None:
    check(kind, conf)


@pytest.mark.parametrize("kind", [k for k in KINDS if dag_params(k)])
@PROPERTY
@given(data=st.data())
def test_whatever_passes_the_run_check_passes_the_trigger_form(kind: str, data: Any) -> None:
    """The form (JSON schema) never refuses a value the run would accept, so no valid run is untriggerable."""
    params = dag_params(kind)
    conf = {name: data.draw(json_values | NEAR_MISSES[name], label=name) for name in params}
    if check(kind, conf) is None:
        return
    for name, param in params.items():
        copy.copy(param).resolve(conf[name])  # raises ParamValidationError if the schema refused it


@PROPERTY
@given(
    start=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9990, 1, 1), timezones=_offsets),
    length=st.timedeltas(min_value=timedelta(seconds=-10), max_value=timedelta(days=40)),
)
def test_an_ingest_window_is_the_same_instants_in_utc_or_refused(start: datetime, length: timedelta) -> None:
    params = {"window_start": start.isoformat(), "window_end": (start + length).isoformat()}
    try:
        window = ingest_window(params)
    except BadParam:
        return
    assert window is not None
    assert window.start == start and window.end == start + length  # aware datetimes compare as instants
    assert window.start.tzinfo == UTC and EARLIEST <= window.start < window.end <= NOW + MAX_FUTURE


# --- the cases the issue names, and their messages ------------------------------------------------------------

W = ("2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z")


@pytest.mark.parametrize(
    ("kind", "params", "names"),
    [
        ("ingest", {"window_start": W[1], "window_end": W[0]}, "inverted"),
        ("ingest", {"window_start": W[0], "window_end": W[0]}, "empty window"),
        ("ingest", {"window_start": W[0]}, "give both window_start and window_end"),
        (
            "ingest",
            {"window_start": "2026-11-28T11:00:00", "window_end": W[1]},
            "window_start: '2026-11-28T11:00:00' has no time zone",
        ),
        (
            "ingest",
            {"window_start": "28/11/2026 11:00", "window_end": W[1]},
            "window_start: '28/11/2026 11:00' is not a date-time",
        ),
        (
            "ingest",
            {"window_start": "0001-01-01T00:00:00Z", "window_end": W[1]},
            "window_start: 0001-01-01T00:00:00+00:00 is before 2000-01-01",
        ),
        (
            "ingest",
            {"window_start": W[0], "window_end": "9999-12-31T00:00:00Z"},
            "window_end: 9999-12-31T00:00:00+00:00 is after",
        ),
        (
            "ingest",
            {"window_start": "2000-01-01T00:00:00Z", "window_end": W[1]},
            "one run fetches at most 31 days",
        ),
        ("ingest", {"window_start": "", "window_end": W[1]}, "window_start: is empty"),
        (
            "ingest",
            {"window_start": 1764327600, "window_end": W[1]},
            "window_start: expected a date-time string",
        ),
        ("ingest", {"window_strat": W[0]}, "window_strat: not a param of this DAG"),
        ("quality", {"window_start": "2016-11-28T12:00:00Z", "window_end": W[1]}, "at most 168 hours"),
        (
            "quality",
            {"window_start": "2026-11-28T11:30:00Z", "window_end": W[1]},
            "window_start: 2026-11-28T11:30:00+00:00 is not a whole UTC hour",
        ),
        (
            "quality",
            {"window_start": "2026-11-28T12:00:00Z", "window_end": "2026-11-28T13:00:00Z"},
            "window_end: 2026-11-28T13:00:00+00:00 is after",
        ),
        (
            "quality",
            {"window_start": "2026-11-2811:00", "window_end": W[1]},
            "window_start: '2026-11-2811:00' is not a date-time",
        ),
        (
            "quality",
            {"window_start": W[1], "window_end": W[0], "release": True, "released_by": "a", "reason": "b"},
            "inverted",
        ),
        (
            "quality",
            {"window_start": W[0], "window_end": W[1], "release": True},
            "release needs released_by and reason",
        ),
        (
            "quality",
            {"release": True, "released_by": "a", "reason": "b"},
            "release needs window_start and window_end",
        ),
        ("quality", {"released_by": "on-call", "reason": "x"}, "released_by/reason: given without release"),
        ("quality", {"release": "yes"}, "release: expected true or false"),
        ("quality", {"source": "twitter"}, "source: unknown source 'twitter'"),
        (
            "quality",
            {
                "window_start": W[0],
                "window_end": W[1],
                "release": True,
                "released_by": "a\x00",
                "reason": "b",
            },
            "released_by: contains a NUL",
        ),
        ("replay_quarantine", {"source": "reddit", "window_start": W[1], "window_end": W[0]}, "inverted"),
        (
            "replay_quarantine",
            {"source": "reddit", "reason_codes": ["text_to_large"]},
            "reason_codes: unknown value(s) ['text_to_large']",
        ),
        (
            "replay_quarantine",
            {"source": "reddit", "reason_codes": "text_too_large"},
            "reason_codes: expected a list",
        ),
        ("replay_quarantine", {"source": None}, "source: unknown source None"),
        (
            "retention",
            {"documents_days": 10**12},
            "documents_days: 1000000000000 is out of range: from 1 to 3650",
        ),
        ("retention", {"raw_days": 0}, "raw_days: 0 is out of range"),
        ("retention", {"facts_days": -5}, "facts_days: -5 is out of range"),
        (
            "retention",
            {"facts_days": math.nan},
            "facts_days: expected a whole number from 1 to 3650, got nan",
        ),
        ("retention", {"facts_days": math.inf}, "facts_days: expected a whole number"),
        ("retention", {"raw_days": 1.5}, "raw_days: expected a whole number"),
        ("retention", {"raw_days": True}, "raw_days: expected a whole number"),
        ("retention", {"raw_days": "14"}, "raw_days: expected a whole number"),
        ("retention", {"dry_run": "false"}, "dry_run: expected true or false"),
        (
            "restore_archive",
            {"table": "core.documents", "period": "2026-01-15"},
            "period: core.documents is archived per month",
        ),
        (
            "restore_archive",
            {"table": "core.documents", "period": "2027-01-01"},
            "period: 2027-01-01 is in the future",
        ),
        (
            "restore_archive",
            {"table": "core.documents", "period": "1970-01-01"},
            "period: 1970-01-01 is before 2000-01-01",
        ),
        (
            "restore_archive",
            {"table": "core.documents", "period": "2026-01-01", "keep_days": 10**9},
            "keep_days: 1000000000 is out of range",
        ),
        (
            "restore_archive",
            {"table": "pg_authid", "period": "2026-01-01"},
            "table: unknown table 'pg_authid'",
        ),
        ("export", {"day": "2026-11-28"}, "day: 2026-11-28 has not ended yet"),
        ("export", {"day": "2026-02-30"}, "day: '2026-02-30' is not a date"),
        ("export", {"marts": ["daily_volume", "daily_volume"]}, "marts: lists a value twice"),
        ("export", {"marts": ["weekly"]}, "marts: unknown value(s) ['weekly']"),
        ("none", {"window_start": W[0]}, "window_start: not a param of this DAG (it takes none)"),
    ],
)
def test_bad_params_are_refused_naming_the_param(kind: str, params: dict[str, Any], names: str) -> None:
    with pytest.raises(BadParam) as err:
        validate(kind, params)
    assert names in str(err.value)


def test_good_params_parse_to_utc_and_defaults() -> None:
    out = validate("ingest", {"window_start": "2026-11-28T12:30:00+01:30", "window_end": W[1]})
    assert out == {
        "window_start": datetime(2026, 11, 28, 11, tzinfo=UTC),
        "window_end": datetime(2026, 11, 28, 12, tzinfo=UTC),
    }
    assert validate("ingest", {}) == {"window_start": None, "window_end": None}
    assert validate("retention", {"documents_days": 30.0})["documents_days"] == 30
    assert (
        validate("restore_archive", {"table": "raw.api_responses", "period": "2026-11-03"})["keep_days"] == 7
    )
    out = validate(
        "quality",
        {
            "window_start": W[0],
            "window_end": W[1],
            "release": True,
            "released_by": " on-call ",
            "reason": "ok",
        },
    )
    assert (out["released_by"], out["reason"], out["source"]) == ("on-call", "ok", None)
    assert validate("replay_quarantine", {"source": "x", "reason_codes": []})["reason_codes"] is None
    # A DAG's own extra params are allowed when it declares them.
    assert validate("none", {"extra": 1}, declared=["extra"]) == {}


def test_a_bad_param_fails_without_retries_and_is_still_a_value_error() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    assert issubclass(BadParam, AirflowFailException) and issubclass(BadParam, ValueError)


def test_bad_params_and_bad_config_do_not_count_against_the_source() -> None:
    from pulse.config import ConfigError
    from pulse.ingest.guard import is_source_failure
    from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError

    assert not is_source_failure(BadParam("window_start", "x"))
    assert not is_source_failure(ConfigError("subreddits: x"))
    for exc in (
        PageFetchError("503"),
        MalformedPageError("not JSON"),
        SourceAuthError("401"),
        TimeoutError(),
    ):
        assert is_source_failure(exc)


def test_every_dag_declares_the_params_the_check_knows(dagbag: Any) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert set(dag.params) == set(dag_params(kind_of(dag_id))), dag_id


def test_the_lists_in_the_params_match_their_sources() -> None:
    from pulse.archive.retention import load_policies
    from pulse.export.run import MARTS as EXPORT_MARTS

    assert tuple(m.name for m in EXPORT_MARTS) == MARTS
    assert set(RESTORABLE_TABLES) == {p.table for p in load_policies()[1]}

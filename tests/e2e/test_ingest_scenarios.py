"""The ingest scenarios every source shares, end to end: simulator over HTTP -> raw -> core/quarantine in the real
PostgreSQL, written once and run for each source that has them.

What differs between sources is one row of :data:`SOURCES` (the DAG, its tables, the simulator's knobs, the
expected counts) plus, where a source asserts more than the shared scenario, a function in that row's ``extras``
(called with the scenario's results). Tests that only one source has stay in ``test_ingest_<source>.py``, which
build their ``ingest`` fixture with :func:`start_ingest` and share the helpers below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import SIM_NOW, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

#: The quarantine reasons of bad documents (the simulator's bad-item kinds).
DOC_REASONS = frozenset(
    {"missing_id", "bad_timestamp", "future_timestamp", "text_nul_byte", "text_too_large", "missing_text"}
)


@dataclass(frozen=True)
class Source:
    """What one source's shared scenarios need to know; ``None`` means the source does not assert it."""

    name: str
    #: ``(key columns..., content_sha256)`` queries; their rows make the snapshot, ``{key: sha}``.
    snapshot_sql: tuple[str, ...]
    #: tables whose rows are loaded items (counted per table), all filtered by ``source``.
    tables: tuple[str, ...] = ("core.documents",)
    #: simulator settings before every run (volumes), and the test clock patches (``target -> value``).
    volume: Mapping[str, Any] = field(default_factory=dict)
    clock: Mapping[str, Any] = field(default_factory=dict)
    #: every served item: the bad-item ratio, the served count (exact or minimum), the raw pages (exact or min).
    bad_ratio: float = 0.2
    served_exact: int | None = None
    served_min: int = 0
    pages: int | None = None
    pages_min: int = 1
    reasons: frozenset[str] = DOC_REASONS
    reasons_exact: bool = False
    reasons_min: int = 0
    #: the served identities of the loaded rows (None: the source does not check them against the served ones).
    loaded_keys: Callable[[Any], set[str]] | None = None
    #: ops.ingest_runs.items counts the served items.
    run_counts_items: bool = False
    #: throttling and a 5xx burst: simulator faults, statuses expected (a subset, or exact), connection extras.
    faults: Mapping[str, Any] = field(default_factory=dict)
    fault_statuses: Mapping[str, int] = field(default_factory=dict)
    fault_statuses_exact: bool = False
    fault_extras: Mapping[str, Any] = field(default_factory=dict)
    clean_size: tuple[str, int] | None = None  # ("min" | "exact", n) rows of the clean run
    #: rejected credentials: the connection, a wrong secret, words the alert names, simulator stats expected.
    conn_id: str = ""
    wrong_secret: str = "wrong-secret"
    alert_words: tuple[str, ...] = ("401",)
    alert_hides_secret: bool = False
    auth_stats: Mapping[str, Any] = field(default_factory=dict)
    #: a page that stays malformed: the error expected, the simulator settings of the retry.
    malformed_match: str = r"stayed malformed after 4 attempts"
    retry_config: Mapping[str, Any] = field(default_factory=dict)
    #: a backfill wholly beyond reach: the window, the streams recorded as gaps.
    beyond_reach: tuple[str, str] | None = None
    gap_streams: tuple[str, ...] = ()
    #: pseudonymised people: who the raw pages name, at least how many, the core columns that must not.
    people: Callable[[list[tuple[str, str]]], set[str]] | None = None
    people_min: int = 0
    people_sql: str = ""
    leaked: Callable[[str, str], bool] = lambda person, text: person in text
    pseudonyms_checked: bool = True
    #: duplicates across pages: the simulator settings; whether raw's items exceed the served ones.
    duplicates: Mapping[str, Any] = field(default_factory=lambda: {"duplicate_across_pages": True})
    raw_repeats: bool = True
    #: backfill in any order: three windows in schedule order, and the least rows the schedule loads.
    backfill: tuple[tuple[str, str], ...] = ()
    backfill_min_rows: int = 0
    #: a manual run without a window: the default window's length and how far before run_after it may end.
    manual_window: timedelta | None = None
    manual_slack: timedelta = timedelta(hours=2)
    #: more assertions a source makes in a shared scenario: ``extras[scenario](ctx)``.
    extras: Mapping[str, Callable[[SimpleNamespace], None]] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.name}"


@dataclass(frozen=True)
class Counts:
    loaded: tuple[int, ...]  # per table of the source
    quarantined: int
    raw: int

    @property
    def items(self) -> int:
        return sum(self.loaded) + self.quarantined


def counts(db: Any, source: Source) -> Counts:
    name = source.name
    loaded = tuple(
        db.execute(f"SELECT count(*) FROM {table} WHERE source = %s", (name,)).fetchone()[0]
        for table in source.tables
    )
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = %s", (name,)).fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = %s", (name,)).fetchone()[0]
    return Counts(loaded, quar, raw)


def snapshot(db: Any, source: Source) -> dict[Any, str]:
    """Every loaded row of the source: its key -> content hash."""
    out: dict[Any, str] = {}
    for sql in source.snapshot_sql:
        for row in db.execute(sql, (source.name,)).fetchall():
            out[row[0] if len(row) == 2 else tuple(row[:-1])] = row[-1]
    return out


class Ingest:
    """Runs the source's ingest DAG (``dag.test()``) for a window: ``ingest(window)``; ``None``: no window."""

    def __init__(self, source: Source, dag: Any) -> None:
        self.source = source
        self.dag = dag

    def __call__(self, window: tuple[str, str] | None = WINDOW) -> Any:
        # (explicit None, not {}: in-process, dag.test() could leave the previous run's conf in the DAG's params)
        conf = {"window_start": window[0] if window else None, "window_end": window[1] if window else None}
        return dag_test(self.dag, run_conf=conf)


def start_ingest(name: str, request: pytest.FixtureRequest) -> Ingest:
    """The source's DAG with the session's services up, its simulator volume and test clock set, the warehouse
    truncated. (For the ``ingest`` fixture of each source's file and of the scenarios here.)"""
    for fixture in ("airflow_db", "warehouse", "slack"):
        request.getfixturevalue(fixture)
    dagbag, sim, db = (request.getfixturevalue(f) for f in ("dagbag", "sim", "db"))
    monkeypatch = request.getfixturevalue("monkeypatch")
    source = SOURCES[name]
    dag = dagbag.dags.get(source.dag_id)
    assert dag is not None, dagbag.import_errors
    for target, value in source.clock.items():
        monkeypatch.setattr(target, value)
    if source.volume:
        sim.configure({name: dict(source.volume)})
        # (volume survives sim.reset(): restore it for the next test)
        request.addfinalizer(lambda: sim.configure({name: dict(source.volume)}))
    truncate_warehouse(db)
    return Ingest(source, dag)


def _extra(source: Source, scenario: str, /, **ctx: Any) -> None:
    check = source.extras.get(scenario)
    if check is not None:
        check(SimpleNamespace(**ctx))


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> None:
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    conn = json.loads(os.environ[key])
    if "extra" in changes:
        changes["extra"] = {**conn.get("extra", {}), **changes["extra"]}
    monkeypatch.setenv(key, json.dumps({**conn, **changes}))


# ------------------------------------------------------------------------------------------------
# what only some sources assert in a shared scenario
# ------------------------------------------------------------------------------------------------

X_QUERIES = {"python lang:en", "airflow"}  # tests/data/sources.yaml: two queries, 10 tweets a page
NEWSAPI_SERVED = 24 + 38  # tests/data/sources.yaml: everything "bitcoin" for the hour, one headline list
AV_STREAMS = {"daily:IBM", "intraday:IBM:60min:2026-11", "crypto_daily:BTC:EUR"}
GITHUB_REPO = "apache/airflow"  # tests/data/sources.yaml: repositories [apache/airflow], search_max_items 20


def _x_every_served(c: SimpleNamespace) -> None:
    reasons = dict(
        c.db.execute(
            "SELECT reason_code, count(*) FROM quality.quarantine WHERE source = 'x' GROUP BY 1"
        ).fetchall()
    )
    # Bad tweets with an id are keyed by it; only the id-less ones by content hash.
    assert (
        c.db.execute(
            "SELECT count(*) FROM quality.quarantine WHERE source = 'x' AND item_key LIKE 'sha256:%'"
        ).fetchone()[0]
        == reasons["missing_id"]
    )
    # Every page is in raw with its window, as sent (X refused end_time 12:00 at its 12:00: cut to 11:59:48).
    pages = c.db.execute(
        "SELECT stream, request_params, status_code, item_count FROM raw.api_responses ORDER BY id"
    ).fetchall()
    assert {p[0] for p in pages} == {f"search:{q}" for q in X_QUERIES}
    assert {(p[1]["start_time"], p[1]["end_time"]) for p in pages} == {
        ("2026-11-28T11:00:00Z", "2026-11-28T11:59:48Z")
    }
    assert {p[2] for p in pages} == {200} and sum(p[3] for p in pages) == c.served["served_count"]
    rows = c.db.execute(
        "SELECT channel, kind, url, created_at FROM core.documents WHERE source = 'x' ORDER BY created_at"
    ).fetchall()
    assert {r[0] for r in rows} == X_QUERIES and {r[1] for r in rows} == {"tweet"}
    assert all(r[2].startswith("https://x.com/i/web/status/") for r in rows)
    assert rows[0][3] >= datetime.fromisoformat(WINDOW[0]) and rows[-1][3] < datetime.fromisoformat(WINDOW[1])


def _newsapi_every_served(c: SimpleNamespace) -> None:
    by_stream = dict(
        c.db.execute(
            "SELECT coalesce(payload->>'query', 'headlines:' || (payload->>'headlines')), count(*) "
            "FROM core.documents GROUP BY 1"
        ).fetchall()
    )
    assert set(by_stream) == {"bitcoin", "headlines:us/technology"}
    coverage = c.db.execute("SELECT stream, status, reason FROM ops.coverage ORDER BY stream").fetchall()
    assert coverage == [
        ("everything:bitcoin", "ingested", None),
        ("top-headlines:us/technology", "ingested", None),
    ]


def _av_every_served(c: SimpleNamespace) -> None:
    streams = {r[0] for r in c.db.execute("SELECT stream FROM raw.api_responses").fetchall()}
    assert streams == AV_STREAMS
    bad_served = {ident: v["bad"] for ident, v in c.served["served"].items() if v["bad"]}
    quarantined = dict(c.db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall())
    assert set(quarantined) == set(bad_served), "quarantine rows are keyed by the served bar identity"
    expected = {
        "non_numeric": "bad_field",
        "missing_value": "bad_field",
        "high_below_low": "bad_field",
        "bad_timestamp": "bad_timestamp",
        "future_timestamp": "future_timestamp",
    }
    assert all(quarantined[i] == expected[kind] for i, kind in bad_served.items())
    by_kind = dict(
        c.db.execute(
            "SELECT interval || ':' || asset_class || ':' || market, count(*) FROM core.market_bars GROUP BY 1"
        ).fetchall()
    )
    assert set(by_kind) == {"1d:stock:USD", "60min:stock:USD", "1d:crypto:EUR"}


def _owm_shifted_back(key: str) -> str:
    """The served identity of a forecast entry the simulator moved 10 days ahead (``future_timestamp``)."""
    city_kind, _, dt = key.rpartition(":")
    return f"{city_kind}:{int(dt) - 10 * 86400}"


def _owm_every_served(c: SimpleNamespace) -> None:
    assert c.counts.loaded[0] > 25 and c.counts.quarantined > 3
    bad_served = {ident for ident, v in c.served["served"].items() if v["bad"]}
    # Quarantined items with a usable dt are keyed "<city>:<kind>:<dt>".
    keyed = {
        k for (k,) in c.db.execute("SELECT item_key FROM quality.quarantine") if not k.startswith("sha256:")
    }
    assert keyed and all(k in bad_served or _owm_shifted_back(k) in bad_served for k in keyed)


def _owm_loaded_keys(db: Any) -> set[str]:
    """Every good item is in core under the configured city name, with the time the API gave it."""
    return {
        f"{city}:{kind}:{int(valid_at.timestamp())}"
        for city, kind, valid_at in db.execute("SELECT city, kind, valid_at FROM core.weather_observations")
    }


def _github_every_served(c: SimpleNamespace) -> None:
    kinds = dict(c.db.execute("SELECT kind, count(*) FROM core.documents GROUP BY kind").fetchall())
    assert set(kinds) == {"github_event", "issue", "pull_request"}
    pages = dict(c.db.execute("SELECT stream, count(*) FROM raw.api_responses GROUP BY stream").fetchall())
    assert pages[f"events:{GITHUB_REPO}"] == 2 and pages[f"repo:{GITHUB_REPO}@{WINDOW[1]}"] == 1


def _github_loaded_keys(db: Any) -> set[str]:
    keys = {r[0] for r in db.execute("SELECT external_id FROM core.documents WHERE source = 'github'")}
    return keys | {f"repo:{r[0]}" for r in db.execute("SELECT repo FROM core.github_repo_snapshots")}


def _av_faults(c: SimpleNamespace) -> None:
    assert [t.try_number for t in c.dr.get_task_instances() if t.task_id == "extract"] == [1], "no task retry"
    assert (
        c.db.execute("SELECT count(*) FROM raw.api_responses WHERE body LIKE '%Thank you%'").fetchone()[0]
        == 0
    )


def _owm_faults(c: SimpleNamespace) -> None:
    # Three failed answers in a row on the first page: within the connection's 4 attempts, so the hook absorbs
    # them with its waits (1 s Retry-After, 0.2 s and 0.4 s backoff) and the task needs no retry.
    assert {ti.task_id: ti.try_number for ti in c.dr.get_task_instances()} == {
        "warehouse_ready": 1,
        "extract": 1,
        "load": 1,
    }


def _github_faults(c: SimpleNamespace) -> None:
    # 502, 502, then the limit, then 200: three failures within one page's four attempts (no task retry)
    assert next(t for t in c.dr.get_task_instances() if t.task_id == "extract").try_number == 1


def _av_rejected(c: SimpleNamespace) -> None:
    assert counts(c.db, c.source) == Counts((0,), 0, 0)


def _owm_rejected(c: SimpleNamespace) -> None:
    assert c.db.execute("SELECT consecutive_failures FROM quality.source_health").fetchone() == (1,)


def _reddit_malformed(c: SimpleNamespace) -> None:
    assert c.rows[0][1:3] == (0, True)
    first = c.valid[0][0]
    assert [p for p in c.valid if p[0] == first][1][1:] == (1, 2)


def _x_malformed(c: SimpleNamespace) -> None:
    assert [r[1:3] for r in c.rows] == [(0, True), (1, False)]
    first = c.valid[0][0]
    assert [p[1:] for p in c.valid if p[0] == first] == [(0, 1), (1, 2), (2, 2)]
    assert c.result["pages"] == 6 and c.result["items"] == 60


def _newsapi_malformed(c: SimpleNamespace) -> None:
    assert c.rows[0][1:3] == (0, True)
    assert c.result["pages"] == 7 and c.result["items"] == NEWSAPI_SERVED
    assert [p for p in c.valid if p[0] == "everything:bitcoin"] == [
        ("everything:bitcoin", 0, 1),
        ("everything:bitcoin", 1, 2),
        ("everything:bitcoin", 2, 2),
    ]


def _av_malformed(c: SimpleNamespace) -> None:
    # A retry skips the stored series and fetches only the others.
    assert (c.rows[0][0], c.rows[0][2]) == ("daily:IBM", True)
    assert c.result["pages"] == 3
    assert c.sim.stats()["alphavantage"]["requests"] == 2
    assert [(p[0], p[2]) for p in c.valid] == [
        ("daily:IBM", 1),
        ("intraday:IBM:60min:2026-11", 2),
        ("crypto_daily:BTC:EUR", 2),
    ]


def _owm_malformed(c: SimpleNamespace) -> None:
    # The current weather came through; a retry skips it and fetches only the forecast.
    assert [(r[0], r[2]) for r in c.rows] == [("current:London", True), ("forecast:London", False)]
    assert c.sim.stats()["openweathermap"]["requests"] == 1
    assert [(p[0], p[2]) for p in c.valid] == [("current:London", 1), ("forecast:London", 2)]


def _owm_beyond_reach(c: SimpleNamespace) -> None:
    assert c.db.execute("SELECT pages, items, loaded FROM ops.ingest_runs").fetchone() == (0, 0, 0)


def _reddit_people(raw: list[tuple[str, str]]) -> set[str]:
    return {child["data"]["author"] for _, body in raw for child in json.loads(body)["data"]["children"]}


def _x_people(raw: list[tuple[str, str]]) -> set[str]:
    people: set[str] = set()
    for _, body in raw:
        page = json.loads(body)
        for user in page["includes"]["users"]:
            people |= {user["id"], user["username"], user["name"]}
        people |= {t["in_reply_to_user_id"] for t in page["data"] if "in_reply_to_user_id" in t}
    return people


def _newsapi_people(raw: list[tuple[str, str]]) -> set[str]:
    # (a byline that is the outlet's own name, like "Nintendo Life", is public as the source name)
    return {
        a["author"]
        for _, body in raw
        for a in json.loads(body)["articles"]
        if a["author"] and a["author"] != a["source"]["name"]
    }


def _github_people(raw: list[tuple[str, str]]) -> set[str]:
    people: set[str] = set()
    for stream, body in raw:
        if stream.startswith(("events:", "issues:")):
            for item in json.loads(body):
                people.add((item.get("actor") or item.get("user"))["login"])
                for commit in item.get("payload", {}).get("commits", []):
                    people |= {commit["author"]["email"], commit["author"]["name"]}
    return people


def _x_replies(c: SimpleNamespace) -> None:
    replies = [r[1] for r in c.core if r[1]["in_reply_to"]]
    assert replies and all(p["reply"] for p in replies)


def _newsapi_key_not_in_raw(c: SimpleNamespace) -> None:
    raw_text = " ".join(
        json.dumps(r)
        for r in c.db.execute("SELECT request_params, headers FROM raw.api_responses").fetchall()
    )
    assert "sim-newsapi-key" not in raw_text, "the API key never reaches raw"


def _github_duplicates(c: SimpleNamespace) -> None:
    first, second = (
        json.loads(b)
        for (b,) in c.db.execute(
            "SELECT body FROM raw.api_responses WHERE stream LIKE 'events:%%' ORDER BY page_no"
        ).fetchall()
    )
    assert first[-1]["id"] == second[0]["id"], "the second page repeats the first page's last event"


DOCS_SNAPSHOT = ("SELECT external_id, content_sha256 FROM core.documents WHERE source = %s",)


_NEWSAPI_NOW = datetime.fromisoformat(SIM_NOW)


class _NewsApiClock(datetime):
    """``datetime`` whose ``now()`` is the simulator's clock."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return _NEWSAPI_NOW.astimezone(tz) if tz else _NEWSAPI_NOW.replace(tzinfo=None)


def _days_back(days: int) -> tuple[str, str]:
    old = tuple((datetime.fromisoformat(w) - timedelta(days=days)).isoformat() for w in WINDOW)
    return old[0], old[1]


_SIM_NOW = datetime.fromisoformat(SIM_NOW)
_WINDOW_END = datetime.fromisoformat(WINDOW[1])

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="reddit",
            snapshot_sql=DOCS_SNAPSHOT,
            served_min=51,
            pages_min=4,
            reasons_min=4,
            loaded_keys=lambda db: {
                r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()
            },
            faults={
                "rate_limit": {"count": 2, "retry_after": 1},
                "server_errors": {"count": 4, "status": 503},
            },
            fault_statuses={"429": 2, "503": 4},
            conn_id="reddit_default",
            wrong_secret="wrong-secret",
            retry_config={"bad_items_ratio": 0.0},
            people=_reddit_people,
            people_min=1,
            people_sql="SELECT author_pseudonym, payload, metrics FROM core.documents",
            backfill=(
                ("2026-11-28T09:00:00+00:00", "2026-11-28T10:00:00+00:00"),
                ("2026-11-28T10:00:00+00:00", "2026-11-28T11:00:00+00:00"),
                ("2026-11-28T11:00:00+00:00", "2026-11-28T12:00:00+00:00"),
            ),
            manual_window=timedelta(hours=1),
            manual_slack=timedelta(hours=2),
            extras={"malformed": _reddit_malformed},
        ),
        Source(
            name="x",
            snapshot_sql=DOCS_SNAPSHOT,
            volume={"tweets_per_hour": 30, "reply_ratio": 0.3},
            served_min=51,
            pages=6,
            reasons_exact=True,
            loaded_keys=lambda db: {
                r[0] for r in db.execute("SELECT external_id FROM core.documents WHERE source = 'x'")
            },
            run_counts_items=True,
            faults={
                "rate_limit": {"count": 2, "retry_after": 1},
                "server_errors": {"count": 3, "status": 503},
            },
            fault_statuses={"429": 2, "503": 3},
            clean_size=("min", 51),
            conn_id="x_default",
            wrong_secret="wrong-token",
            auth_stats={"by_status": {"401": 1}},
            beyond_reach=(
                (_SIM_NOW - timedelta(days=9)).isoformat(),
                (_SIM_NOW - timedelta(days=9) + timedelta(hours=1)).isoformat(),
            ),
            gap_streams=("search:airflow", "search:python lang:en"),
            people=_x_people,
            people_min=51,
            people_sql="SELECT author_pseudonym, payload, metrics, channel, url FROM core.documents"
            " WHERE source = 'x'",
            leaked=lambda person, text: f'"{person}"' in text or f"/{person}/" in text,
            duplicates={"duplicate_across_pages": True, "bad_items_ratio": 0.2},
            backfill=(
                ("2026-11-28T08:15:00+00:00", "2026-11-28T09:15:00+00:00"),
                ("2026-11-28T09:15:00+00:00", "2026-11-28T10:15:00+00:00"),
                ("2026-11-28T10:15:00+00:00", "2026-11-28T11:15:00+00:00"),
            ),
            backfill_min_rows=101,
            extras={
                "every_served": _x_every_served,
                "malformed": _x_malformed,
                "pseudonyms": _x_replies,
            },
        ),
        Source(
            name="newsapi",
            snapshot_sql=DOCS_SNAPSHOT,
            volume={
                "api_key": "sim-newsapi-key",
                "articles_per_hour": 24,
                "headlines_per_hour": 4,
                "headlines_total": 38,
                "max_results": 100,
                "plan_horizon_days": 30,
            },
            # How far back a stream reaches is judged against the clock (top headlines: 3 hours), by the extract
            # and by the hook: both are pinned to the simulator's clock, which the test window ends at.
            clock={
                "pulse.hooks.newsapi._utcnow": lambda: _NEWSAPI_NOW,
                "pulse.ingest.extract.datetime": _NewsApiClock,
            },
            served_exact=NEWSAPI_SERVED,
            pages=3 + 4,  # everything: 10+10+4 articles; headlines: 10+10+10+8
            reasons_min=4,
            loaded_keys=lambda db: {
                r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()
            },
            run_counts_items=True,
            # 2 gateway errors then a 429 with Retry-After: three failures in a row, within the 4 attempts a page
            faults={
                "server_errors": {"count": 2, "status": 503},
                "rate_limit": {"count": 1, "retry_after": 1},
            },
            fault_statuses={"503": 2, "429": 1},
            clean_size=("exact", NEWSAPI_SERVED),
            conn_id="newsapi_default",
            wrong_secret="wrong-key",
            alert_words=("401", "apiKeyInvalid"),
            beyond_reach=_days_back(40),
            gap_streams=("everything:bitcoin", "top-headlines:us/technology"),
            people=_newsapi_people,
            people_min=11,
            people_sql="SELECT author_pseudonym, payload FROM core.documents",
            pseudonyms_checked=False,
            extras={
                "every_served": _newsapi_every_served,
                "malformed": _newsapi_malformed,
                "pseudonyms": _newsapi_key_not_in_raw,
            },
        ),
        Source(
            name="alphavantage",
            snapshot_sql=(
                "SELECT symbol, market, interval, ts::text, content_sha256 FROM core.market_bars WHERE source = %s",
            ),
            tables=("core.market_bars",),
            bad_ratio=0.05,
            served_min=1001,
            pages=3,
            reasons=frozenset({"bad_field", "bad_timestamp", "future_timestamp"}),
            reasons_exact=True,
            run_counts_items=True,
            # the simulator serves its faults in request order, so the first page meets all seven: give it room
            fault_extras={"throttle_wait": 0.1, "max_attempts": 8},
            faults={
                "rate_limit": {"count": 2, "retry_after": 1},
                "server_errors": {"count": 3, "status": 503},
                "note_throttle": {"count": 2},
            },
            fault_statuses={"503": 3, "429": 2, "200": 5},  # 3 pages + 2 HTTP-200 Note throttles
            fault_statuses_exact=True,
            conn_id="alphavantage_default",
            wrong_secret="wrong-key",
            alert_words=("apikey",),
            alert_hides_secret=True,
            auth_stats={"requests": 1},
            manual_window=timedelta(days=1),
            manual_slack=timedelta(days=1),
            extras={
                "every_served": _av_every_served,
                "faults": _av_faults,
                "rejected": _av_rejected,
                "malformed": _av_malformed,
            },
        ),
        Source(
            name="openweathermap",
            snapshot_sql=(
                "SELECT city, kind, valid_at, content_sha256 FROM core.weather_observations"
                " WHERE source = %s",
            ),
            tables=("core.weather_observations",),
            bad_ratio=0.25,
            served_exact=41,  # London (tests/data/sources.yaml): 1 observation + 40 forecast entries
            pages=2,
            reasons=frozenset({"bad_timestamp", "future_timestamp", "bad_field", "text_nul_byte"}),
            reasons_exact=True,
            loaded_keys=_owm_loaded_keys,
            run_counts_items=True,
            faults={
                "server_errors": {"count": 2, "status": 503},
                "rate_limit": {"count": 1, "retry_after": 1},
            },
            fault_statuses={"503": 2, "429": 1, "200": 2},
            fault_statuses_exact=True,
            clean_size=("exact", 41),
            conn_id="openweathermap_default",
            wrong_secret="wrong-owm-key",
            alert_hides_secret=True,
            auth_stats={"by_status": {"401": 1}},
            malformed_match=r"forecast:London\) page 0 stayed malformed after 4 attempts",
            beyond_reach=(
                (_WINDOW_END - timedelta(hours=4)).isoformat(),
                (_WINDOW_END - timedelta(hours=3)).isoformat(),
            ),
            gap_streams=("current:London", "forecast:London"),
            extras={
                "every_served": _owm_every_served,
                "faults": _owm_faults,
                "rejected": _owm_rejected,
                "malformed": _owm_malformed,
                "beyond_reach": _owm_beyond_reach,
            },
        ),
        Source(
            name="github",
            snapshot_sql=(
                "SELECT external_id, content_sha256 FROM core.documents WHERE source = %s",
                "SELECT repo || '@' || snapshot_at::text, content_sha256 FROM core.github_repo_snapshots"
                " WHERE source = %s",
            ),
            tables=("core.documents", "core.github_repo_snapshots"),
            volume={
                "events_per_hour": 150,  # two pages of 100 to reach back past the window start
                "issues_per_hour": 3,
                "events_cap": 300,
                "search_total": 57,
                "missing_repos": [],
            },
            served_min=151,
            reasons=DOC_REASONS | {"bad_field"},
            reasons_min=5,
            loaded_keys=_github_loaded_keys,
            faults={"rate_limit": {"count": 1, "retry_after": 1}, "server_errors": {"count": 2}},
            fault_statuses={"403": 1, "502": 2},
            conn_id="github_default",
            wrong_secret="wrong-token",
            alert_words=("401", "Bad credentials"),
            people=_github_people,
            people_min=21,
            people_sql="SELECT title, body, url, author_pseudonym, payload::text, metrics::text FROM core.documents",
            raw_repeats=False,
            extras={
                "every_served": _github_every_served,
                "faults": _github_faults,
                "duplicates": _github_duplicates,
            },
        ),
    )
}


def _with(field_name: str) -> list[str]:
    """The sources whose row sets ``field_name``."""
    return [name for name, s in SOURCES.items() if getattr(s, field_name)]


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    """The ``ingest`` of the source the test is parametrised with (``indirect``)."""
    return start_ingest(request.param, request)


def sources(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("ingest", names or list(SOURCES), indirect=True)


# ------------------------------------------------------------------------------------------------
# the scenarios
# ------------------------------------------------------------------------------------------------


@sources()
def test_every_served_item_is_loaded_or_quarantined(ingest: Ingest, db: Any, sim: Any) -> None:
    source = ingest.source
    sim.configure({source.name: {"bad_items_ratio": source.bad_ratio}})
    dr = ingest()
    assert dr.state == "success"

    got = counts(db, source)
    served = sim.stats()[source.name]
    if source.served_exact is not None:
        assert served["served_count"] == source.served_exact
    assert served["served_count"] >= source.served_min
    assert got.items == served["served_count"]
    assert all(n > 0 for n in got.loaded) and got.quarantined > 0
    if source.pages is not None:
        assert got.raw == source.pages
    assert got.raw >= source.pages_min
    bad_served = {ident for ident, v in served["served"].items() if v["bad"]}
    assert got.quarantined == len(bad_served)
    reasons = {r for (r,) in db.execute("SELECT DISTINCT reason_code FROM quality.quarantine").fetchall()}
    if source.reasons_exact:
        assert reasons == source.reasons, reasons
    assert reasons <= source.reasons and len(reasons) >= source.reasons_min, reasons
    if source.loaded_keys is not None:
        good = {ident for ident, v in served["served"].items() if not v["bad"]}
        assert source.loaded_keys(db) == good, "every good item is in core under its served identity"

    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[2:4] == (sum(got.loaded), got.quarantined)
    assert (run[4].isoformat(), run[5].isoformat()) == WINDOW
    if source.pages is not None:
        assert run[0] == source.pages
    if source.run_counts_items:
        assert run[1] == served["served_count"]
    _extra(source, "every_served", db=db, sim=sim, served=served, counts=got, source=source)


@sources()
def test_same_window_again_adds_no_rows(ingest: Ingest, db: Any, sim: Any) -> None:
    source = ingest.source
    sim.configure({source.name: {"bad_items_ratio": source.bad_ratio}})
    assert ingest().state == "success"
    first, before = counts(db, source), snapshot(db, source)
    assert ingest().state == "success"
    again = counts(db, source)
    assert (again.loaded, again.quarantined) == (first.loaded, first.quarantined)
    assert snapshot(db, source) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


@pytest.mark.parametrize(
    ("ingest", "limit_kind"),
    [
        *[pytest.param(name, None, id=name) for name in SOURCES if name != "github"],
        pytest.param("github", "primary", id="github-primary"),
        pytest.param("github", "secondary", id="github-secondary"),
    ],
    indirect=["ingest"],
)
def test_throttling_and_5xx_burst_end_with_the_same_rows(
    ingest: Ingest, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch, limit_kind: str | None
) -> None:
    source = ingest.source
    assert ingest().state == "success"
    clean = snapshot(db, source)
    if source.clean_size is not None:
        how, n = source.clean_size
        assert len(clean) == n if how == "exact" else len(clean) >= n
    truncate_warehouse(db)
    sim.reset()
    if source.fault_extras:
        _set_conn(monkeypatch, source.conn_id, extra=dict(source.fault_extras))
    faults = json.loads(json.dumps(source.faults))
    if limit_kind is not None:  # GitHub's primary and secondary rate limits
        faults["rate_limit"]["kind"] = limit_kind
    sim.configure({source.name: faults})
    dr = ingest()
    assert dr.state == "success"
    by_status = sim.stats()[source.name]["by_status"]
    if source.fault_statuses_exact:
        assert by_status == source.fault_statuses
    assert {code: by_status.get(code) for code in source.fault_statuses} == source.fault_statuses
    assert snapshot(db, source) == clean
    _extra(source, "faults", db=db, dr=dr, source=source)


@sources()
def test_rejected_credentials_fail_fast_and_alert_slack(
    ingest: Ingest, db: Any, sim: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ingest.source
    # (the fixture truncated the warehouse: that also closes the source's circuit breaker, so one failed run
    # must not open it)
    _set_conn(monkeypatch, source.conn_id, password=source.wrong_secret)
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "rejected credentials must not be retried"
    stats = sim.stats()[source.name]
    assert {key: stats[key] for key in source.auth_stats} == source.auth_stats
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert f"{source.dag_id}.extract" in texts[0]
    assert source.conn_id in texts[0]
    assert all(word in texts[0] for word in source.alert_words), texts[0]
    if source.alert_hides_secret:
        assert source.wrong_secret not in texts[0]
    _extra(source, "rejected", db=db, source=source)


@sources("reddit", "x", "newsapi", "alphavantage", "openweathermap")
def test_page_that_stays_malformed_fails_and_the_retry_resumes(ingest: Ingest, db: Any, sim: Any) -> None:
    from airflow.sdk.exceptions import AirflowException

    source = ingest.source
    # The first page is fine, every later answer is truncated JSON.
    sim.configure({source.name: {"malformed": {"count": 100, "skip": 1}}})
    task = ingest.dag.get_task("extract")
    context = {
        "dag": ingest.dag,
        "run_id": "test_malformed",
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": WINDOW[0], "window_end": WINDOW[1]},
    }
    with pytest.raises(AirflowException, match=source.malformed_match) as err:
        task.execute(context)
    assert "Pages stored before it are kept" in str(err.value)
    rows = db.execute(
        "SELECT stream, page_no, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_malformed'"
        " ORDER BY id"
    ).fetchall()
    assert rows[0][2] is True
    assert rows[-1][2] is False and "not JSON" in rows[-1][3]
    # A retry resumes after the stored pages instead of starting over.
    sim.reset()
    if source.retry_config:
        sim.configure({source.name: dict(source.retry_config)})
    context["ti"] = SimpleNamespace(try_number=2)
    result = task.execute(context)
    valid = db.execute(
        "SELECT stream, page_no, task_try FROM raw.api_responses WHERE dag_run_id = 'test_malformed' AND is_valid"
        " ORDER BY id"
    ).fetchall()
    _extra(source, "malformed", db=db, sim=sim, rows=rows, valid=valid, result=result)


@sources(*_with("beyond_reach"))
def test_a_backfill_beyond_reach_records_gaps_without_asking(ingest: Ingest, db: Any, sim: Any) -> None:
    source = ingest.source
    old = source.beyond_reach
    assert old is not None
    assert ingest(old).state == "success"
    assert counts(db, source) == Counts((0,) * len(source.tables), 0, 0)
    assert sim.stats()[source.name]["requests"] == 0, "a window the source cannot serve costs no request"
    gaps = db.execute(
        "SELECT stream, status, reason, window_start, window_end FROM ops.coverage WHERE source = %s ORDER BY 1",
        (source.name,),
    ).fetchall()
    assert [g[:3] for g in gaps] == [(stream, "gap", "beyond_reach") for stream in source.gap_streams]
    assert all((g[3].isoformat(), g[4].isoformat()) == old for g in gaps)
    _extra(source, "beyond_reach", db=db)


@sources(*_with("people"))
def test_authors_are_pseudonymised_outside_raw(ingest: Ingest, db: Any) -> None:
    source = ingest.source
    assert source.people is not None
    assert ingest().state == "success"
    raw = db.execute(
        "SELECT stream, body FROM raw.api_responses WHERE source = %s", (source.name,)
    ).fetchall()
    people = source.people(raw)
    assert len(people) >= source.people_min
    core = db.execute(source.people_sql).fetchall()
    text = json.dumps(core, default=str)
    leaked = {p for p in people if source.leaked(p, text)}
    assert not leaked, leaked
    if source.pseudonyms_checked:
        pseudonyms = [
            r[0]
            for r in db.execute(
                "SELECT author_pseudonym FROM core.documents WHERE source = %s", (source.name,)
            )
        ]
        assert pseudonyms and all(p and len(p) == 32 for p in pseudonyms)
    _extra(source, "pseudonyms", db=db, core=core)


@sources("reddit", "x", "github")
def test_duplicates_across_pages_load_once(ingest: Ingest, db: Any, sim: Any) -> None:
    source = ingest.source
    sim.configure({source.name: dict(source.duplicates)})
    assert ingest().state == "success"
    served = sim.stats()[source.name]["served_count"]
    assert counts(db, source).items == served
    if source.raw_repeats:
        items = db.execute("SELECT sum(item_count) FROM raw.api_responses WHERE is_valid").fetchone()[0]
        assert items > served, "pages repeated items, yet every item is one row"
    _extra(source, "duplicates", db=db)


@sources(*_with("backfill"))
def test_backfill_in_any_order_gives_the_rows_of_the_scheduled_runs(
    ingest: Ingest, db: Any, sim: Any
) -> None:
    source = ingest.source
    sim.configure({source.name: {"bad_items_ratio": 0.1}})
    for window in source.backfill:  # as the hourly schedule ran them
        assert ingest(window).state == "success"
    scheduled = snapshot(db, source)
    quarantined = {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()}
    assert len(scheduled) >= source.backfill_min_rows
    truncate_warehouse(db)
    for window in reversed(source.backfill):  # a backfill may run them backwards, or in parallel
        assert ingest(window).state == "success"
    assert snapshot(db, source) == scheduled
    assert {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()} == quarantined
    ingested = db.execute("SELECT count(DISTINCT window_start) FROM ops.coverage WHERE status = 'ingested'")
    assert ingested.fetchone()[0] == 3


@sources(*_with("manual_window"))
def test_manual_run_without_logical_date_fetches_the_last_window(ingest: Ingest, db: Any) -> None:
    source = ingest.source
    dr = ingest(window=None)
    assert dr.state == "success"
    start, end = db.execute("SELECT window_start, window_end FROM ops.ingest_runs").fetchone()
    # Either the interval the timetable infers for the run (a full window before it) or the window before
    # run_after: a window of the source's length that ends before the run and not long before it.
    assert end - start == source.manual_window
    assert timedelta(0) <= dr.run_after - end < source.manual_slack

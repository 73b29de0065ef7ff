"""A new source is one declaration: a toy source, declared in this file only, runs end to end.

The toy reads the simulator's NewsAPI ``/v2/everything`` through its own hook (on the shared paging engine,
:class:`pulse.hooks.base.SourceHook`), parses articles with its own functions into the shared records, and is
declared by a :class:`SourceSpec` with a default config (the sources file has no entry for it). Registering
the spec is all it takes: its DAG comes from :func:`pulse.ingest_dag.ingest_dag`, its connection from
``dev.stack.source_connections``, its quota from the spec; rows land in ``core.documents``, a bad article in
``quality.quarantine``, and the window in ``ops.coverage``. No file outside this one is edited
(docs/adding-a-source.md lists what a real source adds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import pytest

from pulse.config import int_in, mapping, str_list
from pulse.hooks.base import Reply, SourceHook, Verdict
from pulse.sources.base import (
    Document,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_iso,
    check_key,
    check_text,
    rejected,
)
from pulse.sources.spec import Freshness, SourceSpec, get_source, register, unregister
from tests.conftest import WINDOW, dag_test, set_connection, truncate_warehouse

pytestmark = pytest.mark.e2e

MODULE = __name__  # the toy's hook and parser live in this module
PII_KEYS = frozenset({"author"})

# ------------------------------------------------------------------------------------------------ the hook


class ToyHook(SourceHook):
    """Pages of ``/v2/everything`` (NewsAPI's shape, served by the simulator), numbered from 1."""

    conn_name_attr = "toy_conn_id"
    default_conn_name = "toy_default"
    conn_type = "pulse_toy"
    hook_name = "Toy"
    source_name = "Toy"
    credential = "API key"
    cursor_param = "page"
    default_timeout = 5.0

    @cached_property
    def client(self) -> Any:
        import requests

        session = requests.Session()
        session.headers["X-Api-Key"] = self.connection.password or ""
        return session

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        response = self.client.get(
            self.connection.host.rstrip("/") + path, params=params, timeout=self.timeout
        )
        return Reply.of(response, params)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        try:
            body = json.loads(reply.body)
            articles, total = body["articles"], int(body["totalResults"])
        except (ValueError, KeyError, TypeError) as exc:
            return Verdict.malformed(f"not a page of articles: {exc}")
        page = int(params.get("page", 1))
        more = articles and page * int(params["pageSize"]) < total
        return Verdict.ok(len(articles), str(page + 1) if more else None)

    def test_connection(self) -> tuple[bool, str]:
        return True, "not checked"


# ------------------------------------------------------------------------------------------------ the parser


@dataclass(frozen=True)
class ToyConfig:
    conn_id: str
    queries: tuple[str, ...]
    page_size: int


def parse_config(entry: Any, where: str) -> ToyConfig:
    entry = mapping(entry, where, {"conn_id", "queries", "page_size"})
    return ToyConfig(
        conn_id=entry.get("conn_id", "toy_default"),
        queries=str_list(entry, "queries", where, pattern=None),
        page_size=int_in(entry, "page_size", where, 1, 100, 10),
    )


def plan_streams(config: ToyConfig, window: Any) -> list[Stream]:
    def api_time(value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    return [
        Stream(
            key=f"toy:{query}",
            endpoint="/v2/everything",
            params={
                "q": query,
                "from": api_time(window.start),
                "to": api_time(window.end),
                "pageSize": config.page_size,
            },
        )
        for query in config.queries
    ]


def reach(stream: Stream) -> timedelta | None:
    return timedelta(days=30)


def parse_item(article: Any, now: datetime) -> Document:
    if not isinstance(article, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "article is not an object")
    url = check_key("url", article.get("url"))
    created_at = check_iso("publishedAt", article.get("publishedAt"), now)
    assert created_at is not None
    return Document(
        source="toy",
        external_id=url,
        kind="toy_article",
        created_at=created_at,
        title=check_text("title", article.get("title"), required=True),
        body=check_text("content", article.get("content")),
        url=url,
    )


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    try:
        articles = json.loads(page.body)["articles"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedPageError(f"stored toy page {page.id} holds no articles: {exc}") from exc
    for index, article in enumerate(articles):
        try:
            yield index, parse_item(article, now)
        except ItemError as exc:
            known = (
                article.get("url")
                if isinstance(article, dict) and isinstance(article.get("url"), str)
                else None
            )
            yield index, rejected(index, exc, known, article, PII_KEYS, pseudonymize)


# ------------------------------------------------------------------------------------------------ the declaration

SPEC = SourceSpec(
    name="toy",
    title="Toy API",
    hook=f"{MODULE}:ToyHook",
    parser=MODULE,
    schedule="50 * * * *",
    default_window=timedelta(hours=1),
    pool_slots=1,
    budgets=((3600, 50),),
    budget_note="50 requests/hour",
    tables=("core.documents",),
    freshness=Freshness("core.documents", max_age_minutes=180),
    local_conn={"password": "sim-newsapi-key"},
    # Not in the sources file: the toy brings its own settings.
    default_config={"conn_id": "toy_default", "queries": ["bitcoin"], "page_size": 10},
)

ARTICLES_PER_HOUR = 24


def _write_to_metadata_db(dag: Any) -> None:
    """``dag.test()`` runs DAGs of the DAG bundle (``dags/``) only: write the toy's DAG to Airflow's metadata
    DB first, as the dag-processor does for a file there (a real source's DAG file is in ``dags/``)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session
        )


@pytest.fixture
def toy(sim: Any) -> Iterator[SourceSpec]:
    """The toy registered, its connection made the way the stack makes every source's."""
    from dev import stack

    register(SPEC)
    conn_var = "AIRFLOW_CONN_TOY_DEFAULT"
    try:
        set_connection(
            "toy_default",
            stack.source_connections(sim.url, {"max_attempts": 3, "backoff": 0.1})["toy_default"],
        )
        sim.configure({"newsapi": {"articles_per_hour": ARTICLES_PER_HOUR, "bad_items_ratio": 0.25}})
        yield SPEC
    finally:
        unregister("toy")
        os.environ.pop(conn_var, None)


def test_toy_source_runs_end_to_end(
    toy: SourceSpec, airflow_db: None, warehouse: Any, slack: Any, db: Any
) -> None:
    from pulse.budget import default_budgets
    from pulse.ingest_dag import ingest_dag

    truncate_warehouse(db)
    assert get_source("toy") is toy and default_budgets()["toy"] == ((3600, 50),)
    dag = ingest_dag(toy, doc_md="### ingest_toy\n\nThe toy source of tests/sources/test_toy_source.py.")
    assert dag.dag_id == "ingest_toy" and dag.get_task("extract").pool == "toy_api"
    assert dag.fileloc == __file__

    _write_to_metadata_db(dag)
    dr = dag_test(dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})
    assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}

    docs = db.execute(
        "SELECT count(*), min(kind), max(kind) FROM core.documents WHERE source = 'toy'"
    ).fetchone()
    quarantined = db.execute("SELECT reason_code FROM quality.quarantine WHERE source = 'toy'").fetchall()
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'toy' AND is_valid").fetchone()[0]
    assert docs[0] > 0 and docs[1:] == ("toy_article", "toy_article")
    assert quarantined, "the simulator's bad articles go to quarantine"
    assert docs[0] + len(quarantined) == ARTICLES_PER_HOUR  # every article of the hour, once
    assert raw == 3  # 24 articles in pages of 10
    coverage = db.execute(
        "SELECT stream, status, window_start, window_end FROM ops.coverage WHERE source = 'toy'"
    ).fetchall()
    start, end = (datetime.fromisoformat(w) for w in WINDOW)
    assert coverage == [("toy:bitcoin", "ingested", start, end)], coverage
    used = db.execute(
        "SELECT sum(used) FROM ops.api_budget WHERE source = 'toy' AND period_s = 3600"
    ).fetchone()[0]
    assert used == 3  # the spec's quota counted every page
    # Nothing of the toy stays behind for the other tests.
    unregister("toy")
    with pytest.raises(KeyError):
        get_source("toy")

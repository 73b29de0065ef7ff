"""Property tests: hostile pages of every source go through the real load into the real PostgreSQL.

Pages of hostile items (tests/sources/hostile_inputs.py: NaN, 1e20, fractions, lone surrogates, NUL, absurd dates,
wrong types, deep nesting, the same item twice, across pages too) are stored in ``raw.api_responses`` and loaded
by the load operator's own code path. Whatever they hold:

* the load never raises;
* every item ends in its ``core`` table or in ``quality.quarantine`` (with a reason code);
* ``core.documents`` holds one row per source item;
* loading the same pages again gives the same rows.

Deterministic and bounded (``derandomize=True``, a dozen examples per source, no deadline).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.sources.base import SOURCES, Document, Fact, Reason, Rejected
from pulse.warehouse import pgtypes
from pulse.warehouse.loader import FACT_TABLES, ParsedBatch
from tests.sources.hostile_inputs import NOW, SHAPES, pages, shifted

RUN = "hostile_run"
RUN_2 = "hostile_run_2"
SETTINGS = settings(
    derandomize=True,
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Any:
    with psycopg.connect(**warehouse, autocommit=True) as c:
        yield c


def _clean(conn: Any, source: str) -> None:
    for table in ("raw.api_responses", "core.documents", "quality.quarantine", "quality.created_at_changes"):
        conn.execute(f"DELETE FROM {table} WHERE source = %s", (source,))
    for table in FACT_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE source = %s", (source,))


def _store(conn: Any, page: Any, page_no: int, run: str) -> int:
    row = conn.execute(
        """
        INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256, is_valid,
                                       dag_id, dag_run_id)
        VALUES (%s, %s, %s, %s, 200, %s, %s, true, 'hostile', %s) RETURNING id
        """,
        (
            page.source,
            page.stream,
            page.endpoint,
            page_no,
            page.body,
            hashlib.sha256(page.body.encode()).hexdigest(),
            run,
        ),
    ).fetchone()
    return int(row[0])


def _load(conn: Any, source: str, run: str) -> None:
    """The load operator's own path (parse the run's pages, upsert, quarantine, resolve)."""
    from pulse.ingest.load import RunLoader
    from pulse.privacy import make_pseudonymizer

    RunLoader(source, SOURCES[source].parser_module(), make_pseudonymizer(source), NOW).load(
        conn, "hostile", run
    )


def _expected(conn: Any, source: str, run: str) -> ParsedBatch:
    from pulse.privacy import make_pseudonymizer
    from pulse.warehouse.raw import RawStore

    batch = ParsedBatch()
    parser = SOURCES[source].parser_module()
    for page in RawStore(conn).valid_pages(source, run):
        for index, out in parser.parse_page(page, make_pseudonymizer(source), NOW):
            batch.add(out, page.id, index)
    return batch


def _snapshot(conn: Any, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "documents": sorted(
            conn.execute(
                "SELECT external_id, created_at, content_sha256, raw_response_id, kind, title, body, score, metrics,"
                " payload FROM core.documents WHERE source = %s",
                (source,),
            ).fetchall(),
            key=repr,
        ),
        "quarantine": sorted(
            conn.execute(
                "SELECT item_key, external_id, reason_code, reason_detail, item, raw_response_id, item_index,"
                " resolution FROM quality.quarantine WHERE source = %s",
                (source,),
            ).fetchall(),
            key=repr,
        ),
        "changes": sorted(
            conn.execute(
                "SELECT external_id, kept_created_at, reported_created_at, raw_response_id"
                " FROM quality.created_at_changes WHERE source = %s",
                (source,),
            ).fetchall(),
            key=repr,
        ),
    }
    for table in FACT_TABLES:
        out[table] = sorted(
            conn.execute(
                f"SELECT to_jsonb(t) - 'loaded_at' - 'first_loaded_at' FROM {table} t WHERE source = %s",
                (source,),
            ).fetchall(),
            key=repr,
        )
    return out


def _fact_key(fact: Fact) -> str:
    return "|".join(v.isoformat() if hasattr(v, "isoformat") else str(v) for v in fact.key())


@pytest.mark.parametrize("source", sorted(SHAPES))
@SETTINGS
@given(data=st.data())
def test_hostile_pages_load_into_core_or_quarantine_and_reload_to_the_same_rows(
    conn: Any, source: str, data: Any
) -> None:
    from pulse.privacy import make_pseudonymizer
    from pulse.sources.base import MalformedPageError

    _clean(conn, source)
    parser = SOURCES[source].parser_module()
    # Two runs (two windows): the same items may come back in the second with other values, other times.
    runs: list[str] = []
    first: list[Any] = []
    for run in (RUN, RUN_2):
        drawn = [data.draw(pages(source)) for _ in range(data.draw(st.integers(1, 2)))]
        if data.draw(st.booleans()):
            drawn.append(drawn[0])  # the same page delivered again (a repeat, the same items twice)
        if runs and data.draw(st.booleans()):  # the first run's items again, their creation times moved
            page = first[0][0]
            drawn.append(
                (replace(page, body=shifted(page.body, data.draw(st.sampled_from([1800, -7200])))), 0)
            )
        first = first if runs else drawn
        page_no = 0
        for page, _ in drawn:
            try:  # a hook stores a page that does not parse as invalid; it never reaches the load
                list(parser.parse_page(page, make_pseudonymizer(source), NOW))
            except MalformedPageError:
                continue
            _store(conn, page, page_no, run)
            page_no += 1
        runs.append(run)

    for run in runs:
        _load(conn, source, run)  # never raises

    quarantined = dict(
        conn.execute(
            "SELECT item_key, reason_code FROM quality.quarantine WHERE source = %s", (source,)
        ).fetchall()
    )
    assert set(quarantined.values()) <= {str(r) for r in Reason}
    docs = {e for (e,) in conn.execute("SELECT external_id FROM core.documents WHERE source = %s", (source,))}
    facts = set()
    for table, (keys, _) in FACT_TABLES.items():
        for row in conn.execute(
            f"SELECT {', '.join(keys)} FROM {table} WHERE source = %s", (source,)
        ).fetchall():
            facts.add("|".join([table, *(v.isoformat() if hasattr(v, "isoformat") else str(v) for v in row)]))
    for run in runs:
        batch = _expected(conn, source, run)
        for rej, _ in batch.rejected:
            assert isinstance(rej, Rejected)
            assert pgtypes.storable_key(rej.item_key) in quarantined, rej
        for doc, _ in batch.docs:
            assert isinstance(doc, Document)
            key = pgtypes.storable_key(doc.external_id)
            assert doc.external_id in docs or key in quarantined, doc.external_id
        for fact, _ in batch.facts:
            assert _fact_key(fact) in facts or pgtypes.storable_key(_fact_key(fact)) in quarantined, fact
    # One row per source item in core.documents, whatever its copies said about their creation time.
    dup = conn.execute(
        "SELECT external_id FROM core.documents WHERE source = %s GROUP BY 1 HAVING count(*) > 1", (source,)
    ).fetchall()
    assert dup == []

    before = _snapshot(conn, source)
    for run in runs:
        _load(conn, source, run)
    assert _snapshot(conn, source) == before
    _clean(conn, source)

"""The record model (pulse.records): a record that constructs is storable, and a refused one gives, for every
column type, the reason (and detail) the loader's own row check gave before the model existed."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pulse.records import (
    COLUMN_TYPES,
    DOCUMENT_FIELDS,
    FACT_TABLES,
    NOT_NULL,
    Document,
    Fact,
    ItemError,
    Reason,
    RecordRefused,
    refusal_record,
)
from pulse.warehouse import pgtypes
from tests.sources.hostile_inputs import DELETE, grid_values

T0 = datetime(2026, 11, 28, 11, 30, tzinfo=UTC)
NAN, INF = float("nan"), float("inf")

DOC = {
    "source": "records_test",
    "external_id": "d_1",
    "kind": "post",
    "created_at": T0,
    "channel": "python",
    "title": "title",
    "body": "body",
    "url": "https://example.com/1",
    "author_pseudonym": "p" * 64,
    "score": 3,
    "metrics": {"comments": 1},
    "payload": {"flair": "News"},
}
FACTS: dict[str, dict[str, Any]] = {
    "core.market_bars": {
        "symbol": "IBM",
        "market": "USD",
        "interval": "1d",
        "ts": T0,
        "source": "records_test",
        "asset_class": "equity",
        "open": 1.5,
        "high": 2.0,
        "low": 1.0,
        "close": 1.25,
        "volume": 1000.0,
    },
    "core.weather_observations": {
        "city": "Oslo",
        "kind": "current",
        "valid_at": T0,
        "source": "records_test",
        "country": "NO",
        "lat": 59.9,
        "lon": 10.7,
        "issued_at": T0,
        "temp_c": -3.5,
        "feels_like_c": -7.0,
        "pressure_hpa": 1012.0,
        "humidity_pct": 80.0,
        "wind_speed_ms": 3.0,
        "wind_deg": 200.0,
        "clouds_pct": 75.0,
        "rain_mm": None,
        "condition": "Clouds",
        "description": "broken clouds",
    },
    "core.github_repo_snapshots": {
        "repo": "o/r",
        "snapshot_at": T0,
        "source": "records_test",
        "stars": 10,
        "forks": 2,
        "watchers": 3,
        "open_issues": 4,
        "size_kb": 5,
        "language": "Python",
        "pushed_at": T0,
    },
}

#: Bad values of every column type, with the reason the column's rule gives.
BAD: dict[str, list[tuple[Any, Reason]]] = {
    "key": [
        ("", Reason.MISSING_ID),
        (None, Reason.MISSING_ID),
        ("a\x00b", Reason.TEXT_NUL_BYTE),
        ("x\ud800", Reason.BAD_FIELD),
        ("k" * 1001, Reason.BAD_FIELD),
        (5, Reason.BAD_FIELD),
    ],
    "text": [("a\x00b", Reason.TEXT_NUL_BYTE), ("x\udfff", Reason.BAD_FIELD), (3, Reason.BAD_FIELD)],
    "event_time": [
        (datetime(1900, 1, 1, tzinfo=UTC), Reason.BAD_TIMESTAMP),
        (datetime(2100, 1, 1, tzinfo=UTC), Reason.BAD_TIMESTAMP),
        (datetime(2026, 11, 28, 11, 30), Reason.BAD_TIMESTAMP),  # naive: its zone is unknown
        (None, Reason.BAD_TIMESTAMP),
        ("2026-11-28T11:30:00Z", Reason.BAD_TIMESTAMP),
    ],
    "timestamptz": [(datetime(2026, 11, 28), Reason.BAD_TIMESTAMP), (1_764_327_600, Reason.BAD_TIMESTAMP)],
    "int4": [
        (2**31, Reason.NUMBER_OUT_OF_RANGE),
        (12.5, Reason.BAD_FIELD),
        (NAN, Reason.BAD_FIELD),
        (INF, Reason.NUMBER_OUT_OF_RANGE),
        (True, Reason.BAD_FIELD),
        ("12", Reason.BAD_FIELD),
    ],
    "numeric": [
        (NAN, Reason.BAD_FIELD),
        (-INF, Reason.NUMBER_OUT_OF_RANGE),
        ("1.5", Reason.BAD_FIELD),  # numeric text is a parser's judgement (Alpha Vantage), not a column's
        (2**53 + 1, Reason.NUMBER_OUT_OF_RANGE),
        (True, Reason.BAD_FIELD),
    ],
    "jsonb": [
        ({"x": NAN}, Reason.BAD_FIELD),
        ({"x": [INF]}, Reason.NUMBER_OUT_OF_RANGE),
        ({"x": "a\x00"}, Reason.TEXT_NUL_BYTE),
        ({"\ud800": 1}, Reason.BAD_FIELD),
        ({"x": 10**13_000}, Reason.NUMBER_OUT_OF_RANGE),
        ({"x": "y" * 1_000_001}, Reason.TEXT_TOO_LARGE),
    ],
}
BAD["float8"] = BAD["numeric"]


def loader_check(table: str, column: str, value: Any) -> Any:
    """The loader's row check of one value before the record model (pulse.warehouse.loader at 66ab0d6:
    ``document_row`` for documents, ``fact_row``'s ``column_value`` for facts): the oracle."""
    if table != "core.documents":
        return pgtypes.column_value(COLUMN_TYPES[table][column], column, value)
    big = pgtypes.PG_MAX_TEXT_BYTES
    if column in ("source", "external_id"):
        return pgtypes.key(column, value)
    if column == "created_at":
        return pgtypes.event_time(column, value)
    if column == "kind":
        return pgtypes.text(column, value, required=True, max_bytes=big)
    if column == "score":
        return pgtypes.integer(column, value)
    if column in ("metrics", "payload"):
        return pgtypes.json_text(column, value or {})
    return pgtypes.text(column, value, max_bytes=big)


def build(table: str, values: dict[str, Any]) -> Document | Fact:
    return Document(**values) if table == "core.documents" else Fact(table, values)


def valid(table: str) -> dict[str, Any]:
    return dict(DOC if table == "core.documents" else FACTS[table])


CASES = [
    pytest.param(table, column, value, reason, id=f"{table}.{column}-{kind}-{i}")
    for table, columns in COLUMN_TYPES.items()
    for column, kind in columns.items()
    for i, (value, reason) in enumerate(BAD[kind])
    # A fact without a key column is a programming error (ValueError), not a refused record.
    if not (value is None and table in FACT_TABLES and column in FACT_TABLES[table][0])
]


def test_the_valid_records_construct() -> None:
    for table in COLUMN_TYPES:
        build(table, valid(table))


@pytest.mark.parametrize(("table", "column", "value", "reason"), CASES)
def test_every_column_refuses_what_the_loader_refused_with_its_reason(
    table: str, column: str, value: Any, reason: Reason
) -> None:
    values = {**valid(table), column: value}
    with pytest.raises(ItemError) as oracle:
        loader_check(table, column, value)
    with pytest.raises(RecordRefused) as refused:
        build(table, values)
    assert refused.value.reason == oracle.value.reason == reason
    assert refused.value.detail == oracle.value.detail
    # The refusal keeps the record as given, for its quarantine row.
    refusal = refused.value.refusal
    assert refusal.table == table and refusal.reason == reason
    assert refusal.values.keys() == values.keys()
    assert all(refusal.values[k] is values[k] for k in values)
    row = refusal_record(4, refusal)
    assert (row.item_index, row.reason, row.detail, row.refusal) == (4, reason, refusal.detail, refusal)
    if table == "core.documents":
        assert list(row.item) == list(DOCUMENT_FIELDS)
        # A document whose key passed keeps its checked key (the load weighs it against its other copies).
        assert (refusal.key is None) == (column in ("source", "external_id", "created_at"))
        ident = values["external_id"]
        if isinstance(ident, str) and ident:
            assert row.item_key == ident and row.external_id == ident
        else:
            assert row.item_key.startswith("sha256:")
    else:
        assert row.item == {"table": table, "values": values}
        keys = FACT_TABLES[table][0]
        assert row.item_key == "|".join(
            v.isoformat() if isinstance(v, datetime) else str(v) for v in (table, *(values[k] for k in keys))
        )


@pytest.mark.parametrize(
    ("table", "column"), [(t, c) for t, cols in NOT_NULL.items() if t in FACT_TABLES for c in sorted(cols)]
)
def test_a_fact_without_a_not_null_value_is_refused(table: str, column: str) -> None:
    """PostgreSQL holds these NOT NULL: the loader's check let None through and the whole batch failed on
    the constraint; the record model refuses the row instead."""
    with pytest.raises(RecordRefused) as err:
        Fact(table, {**FACTS[table], column: None})
    assert err.value.reason == Reason.MISSING_TEXT and column in err.value.detail
    Fact(table, {**FACTS[table], column: ""})  # empty text is text


def test_a_document_is_checked_key_first_then_in_column_order() -> None:
    """The first bad value gives the reason, in the loader's order: key, then kind ... payload."""
    with pytest.raises(RecordRefused) as err:
        Document(**{**DOC, "payload": {"x": NAN}, "title": "a\x00", "external_id": ""})
    assert err.value.reason == Reason.MISSING_ID
    with pytest.raises(RecordRefused) as err:
        Document(**{**DOC, "payload": {"x": NAN}, "title": "a\x00"})
    assert err.value.reason == Reason.TEXT_NUL_BYTE and "title" in err.value.detail


def _grid_records() -> list[Document | Fact]:
    """Every hostile value of the shared grid in every column of every table; the records that construct."""
    made: list[Document | Fact] = []
    n = 0
    for table, columns in COLUMN_TYPES.items():
        for column in columns:
            for value in grid_values():
                if value is DELETE:
                    continue
                n += 1
                values = valid(table)
                values[column] = value
                if table == "core.documents" and column != "external_id":
                    values["external_id"] = f"g_{n}"
                elif table != "core.documents":
                    key = FACT_TABLES[table][0][0]
                    values[key] = f"g_{n}" if column != key else value
                try:
                    made.append(build(table, values))
                except RecordRefused:
                    continue
                except ValueError:  # a fact without a key column: a programming error, not a record
                    continue
    return made


def test_what_constructs_passes_the_loaders_check_unchanged() -> None:
    records = _grid_records()
    assert len(records) > 300
    for record in records:
        table = "core.documents" if isinstance(record, Document) else record.table
        values = (
            {f: getattr(record, f) for f in DOCUMENT_FIELDS}
            if isinstance(record, Document)
            else record.values
        )
        columns = list(COLUMN_TYPES[table])
        if isinstance(record, Document):
            columns = [c for c in DOCUMENT_FIELDS if c != "created_at"]
            columns.insert(4, "created_at")  # the table's order
        checked = dict(zip(columns, record.columns(), strict=True))
        for column in columns:
            expected = loader_check(table, column, values.get(column))
            got = checked[column]
            assert got == expected and type(got) is type(expected), (table, column)


def test_a_record_that_constructs_is_storable(warehouse: dict[str, Any]) -> None:
    """Whatever hostile value a record holds, if it constructs, PostgreSQL stores it as it is."""
    from pulse.warehouse.loader import upsert_documents, upsert_facts

    records = _grid_records()
    docs = [(r, 1) for r in records if isinstance(r, Document)]
    facts = [(r, 1) for r in records if isinstance(r, Fact)]
    with psycopg.connect(**warehouse, autocommit=True) as conn:
        try:
            loaded = upsert_documents(conn, docs, "records_run")
            assert loaded.rejected == []
            assert loaded.loaded == len({d.key()[:2] for d, _ in docs})
            loaded = upsert_facts(conn, facts, "records_run")
            assert loaded.rejected == []
            assert loaded.loaded == len({f.key() for f, _ in facts})
        finally:
            for table in ("core.documents", *FACT_TABLES):
                conn.execute(f"DELETE FROM {table} WHERE dag_run_id = 'records_run'")


# ------------------------------------------------------------------------------------------------
# no import circle between the parsers, the record model and the warehouse
# ------------------------------------------------------------------------------------------------

PULSE = Path(__file__).resolve().parents[2] / "plugins" / "pulse"


def _module(path: Path) -> str:
    parts = path.relative_to(PULSE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``pulse`` module -> the ``pulse`` modules it imports anywhere (top level or inside a function)."""
    modules = {_module(p): p for p in PULSE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]], within: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module among ``within`` (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & within:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(within):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_between_sources_records_and_warehouse() -> None:
    graph = import_graph()
    within = {m for m in graph if m == "pulse.records" or m.startswith(("pulse.sources", "pulse.warehouse"))}
    assert "pulse.records" in within and "pulse.warehouse.loader" in within
    assert _cycles(graph, within) == []
    # The record model stands on PostgreSQL's value rules only; the loader on the record model.
    assert graph["pulse.records"] <= {"pulse.warehouse", "pulse.warehouse.pgtypes"}
    assert not any(d.startswith("pulse.sources") for d in graph["pulse.warehouse.loader"])


@pytest.mark.parametrize(
    "value",
    [10**5000, [[[[]]]] * 3, {"x": float("nan")}, "\ud800"],
    ids=["huge", "nested", "nan", "surrogate"],
)
def test_a_refused_documents_content_hash_never_raises(value: Any) -> None:
    """The load hashes every copy of an item, refused ones too (to weigh them against the stored row)."""
    with pytest.raises(RecordRefused) as err:
        Document(**{**DOC, "payload": {"v": value}, "kind": 5})
    digest = err.value.refusal.digest()
    assert len(digest) == 64 and digest != err.value.refusal.digest(T0.replace(year=2025))

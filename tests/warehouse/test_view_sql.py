"""include/sql/views holds the current definition of every analyst view, and nothing else.

Each file is executed on the migrated test warehouse inside a transaction that is rolled back: the view it
defines must come out exactly as the migrations left it (``pg_get_viewdef``, column names and types, the
comments and the grants). Before the file runs, the view's comments and the analyst's grant are removed, so
the file has to set them itself; that the file really replaced the view is checked on ``pg_rewrite``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWS_DIR = ROOT / "include" / "sql" / "views"
MIGRATIONS_DIR = ROOT / "include" / "migrations" / "versions"
SCHEMAS = ("published", "analytics")
FILES = sorted(VIEWS_DIR.glob("*.sql"))

_CREATE = re.compile(r"^CREATE OR REPLACE VIEW ([a-z0-9_]+\.[a-z0-9_]+) AS\b", re.MULTILINE)


def live_views(conn: psycopg.Connection[Any]) -> set[str]:
    """Every view (plain or materialized) in the analysts' schemas, as ``schema.name``."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relkind IN ('v', 'm')",
        (list(SCHEMAS),),
    ).fetchall()
    return {r[0] for r in rows}


def view_state(conn: psycopg.Connection[Any], view: str) -> dict[str, Any]:
    """What an analyst sees of ``view``: its query, columns, comments and grants."""
    definition, comment = conn.execute(
        "SELECT pg_get_viewdef(%s::regclass), obj_description(%s::regclass, 'pg_class')", (view, view)
    ).fetchone()  # type: ignore[misc]
    columns = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), col_description(attrelid, attnum)"
        "  FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (view,),
    ).fetchall()
    grants = conn.execute(
        "SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable"
        "  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a"
        "  LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE c.oid = %s::regclass ORDER BY 1, 2",
        (view,),
    ).fetchall()
    return {"definition": definition, "comment": comment, "columns": columns, "grants": grants}


def _diff(live: Any, got: Any) -> str:
    if isinstance(live, list) and isinstance(got, list):
        return f"live only {[x for x in live if x not in got]}, file only {[x for x in got if x not in live]}"
    return f"live {live!r}, file {got!r}"


def test_every_view_has_a_file_and_every_file_a_view(db: psycopg.Connection[Any]) -> None:
    files = {p.stem for p in FILES}
    views = live_views(db)
    assert views, "no views in the analysts' schemas: is the warehouse migrated?"
    assert sorted(views - files) == [], f"views without a file in {VIEWS_DIR}"
    assert sorted(files - views) == [], f"files in {VIEWS_DIR} without a view"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_file_defines_the_view_it_is_named_after(path: Path) -> None:
    assert _CREATE.findall(path.read_text()) == [path.stem]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_is_the_current_definition(warehouse: dict[str, Any], path: Path) -> None:
    view = path.stem
    with psycopg.connect(**warehouse) as conn:
        try:
            live = view_state(conn, view)
            # The file must bring back the comments and the grant by itself.
            conn.execute(f"COMMENT ON VIEW {view} IS NULL")
            for column, _type, _comment in live["columns"]:
                conn.execute(f'COMMENT ON COLUMN {view}."{column}" IS NULL')
            conn.execute(f"REVOKE ALL ON {view} FROM analyst")

            conn.execute(path.read_text())

            replaced = conn.execute(
                "SELECT bool_and(xmin = pg_current_xact_id()::xid) FROM pg_rewrite WHERE ev_class = %s::regclass",
                (view,),
            ).fetchone()
            assert replaced == (True,), f"{path.name} did not replace {view}"
            after = view_state(conn, view)
            for key, value in live.items():
                assert after[key] == value, (
                    f"{path.name}: {key} differs from the live view: {_diff(value, after[key])}"
                )
        finally:
            conn.rollback()


def test_migrations_never_read_the_live_definitions() -> None:
    """A migration copies a view's text into itself (or replays a frozen copy): history never changes."""
    reads = re.compile(r"\bsql\W{1,6}views\b")  # include/sql/views, "sql" / "views" ...
    readers = [p.name for p in sorted(MIGRATIONS_DIR.glob("*.py")) if reads.search(p.read_text())]
    assert readers == []

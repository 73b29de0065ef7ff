"""Generate the analysts' data dictionary (Markdown) from the warehouse's own ``COMMENT ON`` text.

Usage: ``make dictionary`` (local stack), or ``python -m pulse.warehouse.dictionary [-o FILE] [--check]``
against ``PULSE_WAREHOUSE_DSN`` / the ``warehouse_default`` connection. ``--check`` exits 1 when FILE differs
from what the database says (CI runs the same comparison in ``tests/warehouse/test_dictionary.py``).

The output lists schemas, tables and views (not their monthly partitions, which change every month), each
with its comment, whether the ``analyst`` role may read it, its partitioning and key, and every column with
type, nullability and comment. It contains nothing that depends on the data or the date, so it only changes
when a migration does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SCHEMAS = ("analytics", "published", "core", "enriched", "quality", "ops", "raw")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[3] / "docs" / "data_dictionary.md"
ANALYST_ROLE = "analyst"

_KINDS = {"r": "table", "p": "table, partitioned", "v": "view", "m": "materialized view"}


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def missing_comments(conn: Any) -> list[str]:
    """Schemas, tables, views and columns without a comment (partitions excluded)."""
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname || coalesce('.' || a.attname, '')
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
           AND (obj_description(c.oid, 'pg_class') IS NULL
                OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
         ORDER BY 1
        """,
        (list(SCHEMAS),),
    ).fetchall()
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) AND obj_description(oid, 'pg_namespace') IS NULL",
        (list(SCHEMAS),),
    ).fetchall()
    return sorted({r[0] for r in rows} | {f"schema {r[0]}" for r in schemas})


def generate(conn: Any) -> str:
    """The dictionary as Markdown."""
    has_analyst = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANALYST_ROLE,)).fetchone()
    out = [
        "# Pulse warehouse: data dictionary",
        "",
        "Generated from the database's `COMMENT ON` text by `make dictionary` "
        "(`python -m pulse.warehouse.dictionary`); do not edit by hand. A test fails when it is out of date.",
        "Times are UTC. *Analyst* says whether the read-only `analyst` role may read the relation.",
        "How the tables are partitioned and indexed, and why: [warehouse.md](warehouse.md).",
        "",
    ]
    schemas = conn.execute(
        """
        SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ANY(%s)
        """,
        (list(SCHEMAS),),
    ).fetchall()
    order = {name: i for i, name in enumerate(SCHEMAS)}
    schemas = sorted(schemas, key=lambda r: order[r[0]])
    out.append("| schema | what it holds |")
    out.append("|---|---|")
    out += [f"| [`{name}`](#schema-{name}) | {_cell(comment)} |" for name, comment in schemas]
    out.append("")
    for schema, comment in schemas:
        out += [f"## Schema `{schema}`", "", _cell(comment), ""]
        rels = conn.execute(
            """
            SELECT c.oid, c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
                   CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                   (SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
                     WHERE k.conrelid = c.oid AND k.contype = 'p')
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
             ORDER BY c.relkind = 'v' DESC, c.relname
            """,
            (schema,),
        ).fetchall()
        if not rels:
            out += ["*(no tables yet)*", ""]
        for oid, name, kind, rel_comment, partkey, pkey in rels:
            readable = (
                conn.execute(
                    "SELECT has_table_privilege(%s, %s::oid, 'SELECT')", (ANALYST_ROLE, oid)
                ).fetchone()[0]
                if has_analyst
                else False
            )
            out += [f"### `{schema}.{name}`", "", _cell(rel_comment), ""]
            facts = [f"*{_KINDS[kind]}*", f"analyst: {'yes' if readable else 'no'}"]
            if partkey:
                facts.append(f"partitioned by month: `{partkey}`")
            if pkey:
                facts.append(f"key: `{pkey}`")
            out += [" · ".join(facts), ""]
            cols = conn.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       col_description(a.attrelid, a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum
                """,
                (oid,),
            ).fetchall()
            out += ["| column | type | null | description |", "|---|---|---|---|"]
            out += [
                f"| `{col}` | {typ} | {'no' if notnull else 'yes'} | {_cell(desc)} |"
                for col, typ, notnull, desc in cols
            ]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    import psycopg

    from pulse.warehouse.db import dsn_from_connection

    with psycopg.connect(dsn_from_connection()) as conn:
        text = generate(conn)
        missing = missing_comments(conn)
    if missing:
        print("these have no COMMENT ON text:\n  " + "\n  ".join(missing), file=sys.stderr)
    current = args.output.read_text() if args.output.exists() else ""
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run `make dictionary`", file=sys.stderr)
            return 1
        return 1 if missing else 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text.splitlines())} lines)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

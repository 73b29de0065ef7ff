"""Load parsed records into ``core`` and ``quality.quarantine``.

Documents go through COPY into a temporary stage, are deduplicated by key (``ON CONFLICT DO UPDATE`` refuses a
batch that holds a key twice), and land with one ``INSERT ... ON CONFLICT DO UPDATE`` that only rewrites rows
whose content hash changed. Each batch is one transaction, so a killed task leaves no partial batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulse.sources.base import FACT_TABLES

if TYPE_CHECKING:
    import psycopg

    from pulse.sources.base import Document, Fact, Rejected

DOC_COLUMNS = (
    "source",
    "external_id",
    "kind",
    "channel",
    "created_at",
    "title",
    "body",
    "url",
    "author_pseudonym",
    "score",
    "metrics",
    "payload",
    "content_sha256",
    "raw_response_id",
    "dag_run_id",
)
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in DOC_COLUMNS if c not in ("source", "external_id"))


@dataclass
class LoadResult:
    loaded: int = 0
    changed: int = 0
    quarantined: int = 0


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def upsert_documents(
    conn: psycopg.Connection[Any],
    docs: Sequence[tuple[Document, int]],
    dag_run_id: str,
    batch_size: int = 10_000,
) -> LoadResult:
    """Upsert ``(document, raw_response_id)`` pairs; return distinct keys loaded and rows changed."""
    result = LoadResult()
    cols = ", ".join(DOC_COLUMNS)
    for batch in _batches(docs, batch_size):
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE stage_documents (LIKE core.documents INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with conn.cursor() as cur, cur.copy(f"COPY stage_documents ({cols}) FROM STDIN") as copy:
                for doc, raw_id in batch:
                    copy.write_row(
                        (
                            doc.source,
                            doc.external_id,
                            doc.kind,
                            doc.channel,
                            doc.created_at,
                            doc.title,
                            doc.body,
                            doc.url,
                            doc.author_pseudonym,
                            doc.score,
                            json.dumps(doc.metrics, ensure_ascii=False),
                            json.dumps(doc.payload, ensure_ascii=False, default=str),
                            doc.content_hash(),
                            raw_id,
                            dag_run_id,
                        )
                    )
            staged = conn.execute(
                "SELECT count(DISTINCT (source, external_id)) FROM stage_documents"
            ).fetchone()
            cur = conn.execute(
                f"""
                INSERT INTO core.documents AS d ({cols})
                SELECT DISTINCT ON (source, external_id) {cols} FROM stage_documents
                ORDER BY source, external_id, raw_response_id DESC
                ON CONFLICT (source, external_id) DO UPDATE SET {_UPDATE}, loaded_at = now()
                WHERE d.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256
                """
            )
            result.loaded += int(staged[0]) if staged else 0
            result.changed += cur.rowcount
    return result


def upsert_facts(
    conn: psycopg.Connection[Any],
    facts: Sequence[tuple[Fact, int]],
    dag_run_id: str,
    batch_size: int = 10_000,
) -> LoadResult:
    """Upsert ``(fact, raw_response_id)`` pairs into their fact tables, the same way as documents:
    COPY to a stage, keep the latest copy of each key, rewrite only rows whose content changed."""
    result = LoadResult()
    by_table: dict[str, list[tuple[Fact, int]]] = {}
    for fact, raw_id in facts:
        by_table.setdefault(fact.table, []).append((fact, raw_id))
    for table, rows in by_table.items():
        keys, values = FACT_TABLES[table]
        cols = (*keys, *values, "content_sha256", "raw_response_id", "dag_run_id")
        col_sql = ", ".join(cols)
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys)
        for batch in _batches(rows, batch_size):
            with conn.transaction():
                conn.execute(
                    f"CREATE TEMP TABLE stage_facts (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                with conn.cursor() as cur, cur.copy(f"COPY stage_facts ({col_sql}) FROM STDIN") as copy:
                    for fact, raw_id in batch:
                        copy.write_row(
                            (
                                *(fact.values.get(c) for c in (*keys, *values)),
                                fact.content_hash(),
                                raw_id,
                                dag_run_id,
                            )
                        )
                staged = conn.execute(
                    f"SELECT count(DISTINCT ({', '.join(keys)})) FROM stage_facts"
                ).fetchone()
                cur = conn.execute(
                    f"""
                    INSERT INTO {table} AS t ({col_sql})
                    SELECT DISTINCT ON ({", ".join(keys)}) {col_sql} FROM stage_facts
                    ORDER BY {", ".join(keys)}, raw_response_id DESC
                    ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {update}, loaded_at = now()
                    WHERE t.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256
                    """
                )
                result.loaded += int(staged[0]) if staged else 0
                result.changed += cur.rowcount
    return result


def quarantine(
    conn: psycopg.Connection[Any],
    source: str,
    rejected: Sequence[tuple[Rejected, int]],
    dag_run_id: str,
) -> int:
    """Record ``(rejected item, raw_response_id)`` pairs, one row per item however often it is fetched.

    Returns the number of distinct items quarantined by this call.
    """
    if not rejected:
        return 0
    latest: dict[str, tuple[Rejected, int]] = {}
    for rej, raw_id in rejected:
        latest[rej.item_key] = (rej, raw_id)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO quality.quarantine
                (source, item_key, external_id, raw_response_id, item_index, reason_code, reason_detail, item,
                 dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, item_key) DO UPDATE SET
                raw_response_id = EXCLUDED.raw_response_id, item_index = EXCLUDED.item_index,
                reason_code = EXCLUDED.reason_code, reason_detail = EXCLUDED.reason_detail,
                item = EXCLUDED.item, dag_run_id = EXCLUDED.dag_run_id, quarantined_at = now(),
                resolved_at = NULL, resolution = NULL
            """,
            [
                (
                    source,
                    key,
                    rej.external_id,
                    raw_id,
                    rej.item_index,
                    str(rej.reason),
                    rej.detail,
                    json.dumps(rej.item, ensure_ascii=False, default=str),
                    dag_run_id,
                )
                for key, (rej, raw_id) in latest.items()
            ],
        )
    return len(latest)


def resolve_quarantined(conn: psycopg.Connection[Any], source: str, external_ids: Sequence[str]) -> int:
    """Mark open quarantine rows of items that have now loaded into core as resolved."""
    if not external_ids:
        return 0
    with conn.transaction():
        cur = conn.execute(
            """
            UPDATE quality.quarantine SET resolved_at = now(), resolution = 'loaded_later'
            WHERE source = %s AND item_key = ANY(%s) AND resolved_at IS NULL
            """,
            (source, list(external_ids)),
        )
    return cur.rowcount

"""``raw.api_responses``: store pages as they arrive, find where a run stopped, read a run's pages back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from pulse.sources.base import Page, StoredPage

if TYPE_CHECKING:
    import psycopg

    from pulse.windows import Window

_SECRET_HEADERS = {"authorization", "set-cookie", "cookie", "x-api-key"}
_SECRET_PARAMS = {"apikey", "api_key", "appid", "token", "access_token", "key"}


@dataclass(frozen=True)
class RunContext:
    """Who fetched: lineage written next to every page."""

    dag_id: str
    dag_run_id: str
    task_try: int
    window: Window


@dataclass(frozen=True)
class LastPage:
    page_no: int
    next_cursor: str | None


def _clean_text(text: str) -> str:
    # PostgreSQL text cannot hold NUL; the body keeps the JSON text, where NUL is escaped (\u0000) anyway.
    return text.replace("\x00", "\\u0000")


#: Partitioned by UTC day of ``fetched_at`` (migration 0013); :meth:`RawStore.store` creates today's and
#: tomorrow's partition on demand, the ``warehouse_maintenance`` DAG keeps days ahead.
ENSURE_DAYS = (
    "SELECT ops.ensure_day_partitions('raw.api_responses', now(), now() + interval '1 day'),"
    " (now() AT TIME ZONE 'UTC')::date"
)


class RawStore:
    """Reads and writes ``raw.api_responses`` on one connection; every write commits on its own."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        #: The UTC day (database clock) whose partition and the next day's were ensured; None: not yet.
        self._ensured_day: date | None = None

    def store(self, source: str, page: Page, run: RunContext) -> int:
        """Insert one page and commit, so a later failure never loses it. Return its id."""
        headers = {k: v for k, v in page.headers.items() if k.lower() not in _SECRET_HEADERS}
        params = {k: v for k, v in page.params.items() if k.lower() not in _SECRET_PARAMS}
        with self.conn.transaction():
            if self._ensured_day is None:
                # Once per store and UTC day: cheap when the partitions exist (the maintenance DAG makes them
                # ahead); a page never lands in raw.api_responses_held for want of its day.
                self._ensured_day = self.conn.execute(ENSURE_DAYS).fetchone()[1]  # type: ignore[index]
            row = self.conn.execute(
                """
                INSERT INTO raw.api_responses
                    (source, stream, endpoint, request_params, page_no, window_start, window_end, status_code,
                     headers, body, body_sha256, is_valid, error, item_count, next_cursor, dag_id, dag_run_id,
                     task_try)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                RETURNING id, (fetched_at AT TIME ZONE 'UTC')::date
                """,
                (
                    source,
                    page.stream.key,
                    page.endpoint,
                    json.dumps(params, default=str),
                    page.page_no,
                    run.window.start,
                    run.window.end,
                    page.status_code,
                    json.dumps(headers),
                    _clean_text(page.text),
                    page.sha256,
                    page.is_valid,
                    page.error,
                    page.item_count,
                    page.next_cursor,
                    run.dag_id,
                    run.dag_run_id,
                    run.task_try,
                ),
            ).fetchone()
        assert row is not None
        if row[1] != self._ensured_day:
            self._ensured_day = None  # a new day: the next store ensures the day after it
        return int(row[0])

    def last_valid_page(self, source: str, dag_run_id: str, stream: str) -> LastPage | None:
        row = self.conn.execute(
            """
            SELECT page_no, next_cursor FROM raw.api_responses
            WHERE source = %s AND dag_run_id = %s AND stream = %s AND is_valid
            ORDER BY page_no DESC, id DESC LIMIT 1
            """,
            (source, dag_run_id, stream),
        ).fetchone()
        self.conn.commit()
        return LastPage(int(row[0]), row[1]) if row else None

    def valid_pages(self, source: str, dag_run_id: str) -> list[StoredPage]:
        """The run's valid pages; for a page fetched twice (a resumed retry), the latest copy only."""
        rows = self.conn.execute(
            """
            SELECT DISTINCT ON (stream, page_no) id, source, stream, endpoint, body
            FROM raw.api_responses
            WHERE source = %s AND dag_run_id = %s AND is_valid
            ORDER BY stream, page_no, id DESC
            """,
            (source, dag_run_id),
        ).fetchall()
        self.conn.commit()
        return [StoredPage(id=r[0], source=r[1], stream=r[2], endpoint=r[3], body=r[4]) for r in rows]

    def run_totals(self, source: str, dag_run_id: str) -> tuple[int, int]:
        row = self.conn.execute(
            """
            SELECT count(*), coalesce(sum(item_count), 0) FROM (
                SELECT DISTINCT ON (stream, page_no) item_count FROM raw.api_responses
                WHERE source = %s AND dag_run_id = %s AND is_valid ORDER BY stream, page_no, id DESC
            ) p
            """,
            (source, dag_run_id),
        ).fetchone()
        self.conn.commit()
        assert row is not None
        return int(row[0]), int(row[1])

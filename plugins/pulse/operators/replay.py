"""ReplayQuarantineOperator: re-parse quarantined items from their raw pages after a fix, load those that pass."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

_SELECT = """
SELECT q.id, q.raw_response_id, q.item_index
  FROM quality.quarantine q
  JOIN raw.api_responses r ON r.id = q.raw_response_id
 WHERE q.source = %(source)s AND q.resolved_at IS NULL
   AND (%(reasons)s::text[] IS NULL OR q.reason_code = ANY(%(reasons)s::text[]))
   AND (%(start)s::timestamptz IS NULL OR r.window_end > %(start)s::timestamptz)
   AND (%(end)s::timestamptz IS NULL OR r.window_start < %(end)s::timestamptz)
 ORDER BY q.id
"""


class ReplayQuarantineOperator(BaseOperator):
    """Re-parse the open quarantine rows of a source with today's parser and load the items that now pass.

    What to replay comes from the run's params, checked by :func:`pulse.params.validate` (a bad one fails the
    task at once, naming it): ``source``, optionally ``reason_codes`` and ``window_start``/``window_end`` (the
    data window of the raw page that held the item must overlap it). Each selected item is parsed again from
    its raw page (no API call); an item that now yields a document or fact is upserted like any load (so never
    a duplicate: the same key updates the same row) and its quarantine row is marked ``resolution =
    'replayed'``; an item that still fails stays open with its new reason. Nothing is deleted.

    :return: to XCom, ``{"selected": n, "replayed": n, "still_failing": n}``.
    """

    ui_color = "#fce8e6"

    def execute(self, context: Any) -> dict[str, int]:
        from pulse.params import validate_context
        from pulse.privacy import make_pseudonymizer
        from pulse.sources.base import StoredPage, get_source
        from pulse.warehouse.db import connect
        from pulse.warehouse.loader import ParsedBatch
        from pulse.windows import utcnow

        checked = validate_context("replay_quarantine", context)
        source = checked["source"]
        reasons = checked["reason_codes"]  # None: every reason code
        parser = get_source(source).parser_module()
        pseudonymize = make_pseudonymizer(source)
        now = utcnow()
        run_id = context["run_id"]
        with connect() as conn:
            selected = conn.execute(
                _SELECT,
                {
                    "source": source,
                    "reasons": reasons,
                    "start": checked["window_start"],
                    "end": checked["window_end"],
                },
            ).fetchall()
            wanted = {(raw_id, index): qid for qid, raw_id, index in selected}
            pages = conn.execute(
                "SELECT id, source, stream, endpoint, body FROM raw.api_responses WHERE id = ANY(%s) ORDER BY id",
                (sorted({raw_id for _, raw_id, _ in selected}),),
            ).fetchall()
            batch = ParsedBatch()  # each item's reference is its quarantine row id
            failing: dict[int, tuple[str, str]] = {}
            for row in pages:
                page = StoredPage(*row)
                try:
                    outputs = list(parser.parse_page(page, pseudonymize, now))
                except Exception as exc:  # the page as a whole no longer parses: its items stay quarantined
                    for (raw_id, _), qid in wanted.items():
                        if raw_id == page.id:
                            failing[qid] = ("bad_field", f"page no longer parses: {exc}"[:500])
                    continue
                for index, out in outputs:
                    if (qid := wanted.get((page.id, index))) is not None:
                        batch.add(out, page.id, qid)
            failing.update(
                {
                    qid: (str(rej.reason), rej.detail)
                    for (rej, _), qid in zip(batch.rejected, batch.rejected_refs, strict=True)
                }
            )
            _, refused = batch.upsert(conn, run_id)
            failing.update({qid: (str(rej.reason), rej.detail) for qid, rej, _ in refused})
            replayed = [
                qid for qid in (*batch.doc_refs, *batch.fact_refs, *batch.refused_refs) if qid not in failing
            ]
            with conn.transaction():
                conn.execute(
                    "UPDATE quality.quarantine SET resolved_at = now(), resolution = 'replayed', dag_run_id = %s"
                    " WHERE id = ANY(%s)",
                    (run_id, replayed),
                )
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE quality.quarantine SET reason_code = %s, reason_detail = %s WHERE id = %s",
                        [(reason, detail, qid) for qid, (reason, detail) in failing.items()],
                    )
        summary = {"selected": len(selected), "replayed": len(replayed), "still_failing": len(failing)}
        self.log.info("%s: %s", source, summary)
        return summary

"""Read documents to enrich and write what the enrichers and duplicate detection found (schema ``enriched``).

Everything here works in batches and in one transaction per batch, keyed like ``core.documents``
(``source, external_id, created_at``), so a killed task leaves no half-written document and a re-run
continues with the documents that are still pending.

**Edited documents.** The loader rewrites a ``core.documents`` row when its content changes, and the row's
``content_sha256`` changes with it. Features and fingerprints store the ``content_sha256`` of the row they were
computed from, so "pending" is an exact comparison of two digests on the primary key, not of timestamps (a
loader transaction that started before an enrich run but committed after it would fool ``loaded_at >
enriched_at``). A rewrite that leaves the text the same (a score or a metric changed) only has its new digest
recorded: features store :func:`pulse.enrich.pipeline.text_sha256` of the text they describe, and
fingerprints are compared with freshly computed ones.

**Finding the work without scanning core.documents.** The pending sets are queues (migration 0013):
``enriched.pending_features`` and ``enriched.pending_fingerprints``, filled by triggers on ``core.documents``
(inserted rows, rows whose ``content_sha256`` changed, in the writer's transaction) and on
``enriched.document_features`` (features written by another enrichment version). A new enrichment version queues
its backlog once (:func:`queue_version`, recorded in ``enriched.pending_versions``; going back to a version
already recorded does not queue again: name a new one). A batch reads the oldest queue rows by primary key and
joins them to ``core.documents`` and the features/fingerprints on the primary keys, so its cost follows the
queue, not the warehouse. Queue rows whose document is gone or already current are deleted on the way; the
others are deleted in the transaction that writes their features or fingerprints, only for the digest they were
queued for (a row the loader queued again meanwhile stays). The digest comparison stays the source of truth: a
queued document is looked at, never trusted blindly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import psycopg

    from pulse.enrich.pipeline import BatchResult, EnrichInput

Key = tuple[str, str, datetime]

#: The oldest queued documents (primary key order) with their row and current features for ``version``; a
#: document whose features match its digest is settled (nothing to do), one that is gone too. LATERAL probes:
#: one primary-key lookup per queued row in the one partition its created_at names (run-time pruning), whatever
#: the planner's guess of a join's cost (a hash join would read every partition; LIMIT 1 keeps the subqueries
#: from being flattened into one).
_PENDING = """
SELECT p.source, p.external_id, p.created_at, p.content_sha256, d.source IS NOT NULL,
       d.kind, d.title, d.body, d.url, d.content_sha256, f.text_sha256, f.source IS NOT NULL,
       f.content_sha256 IS NOT DISTINCT FROM d.content_sha256
  FROM (SELECT source, external_id, created_at, content_sha256 FROM enriched.pending_features
         ORDER BY created_at, source, external_id LIMIT %(limit)s) p
  LEFT JOIN LATERAL (
       SELECT source, kind, title, body, url, content_sha256 FROM core.documents
        WHERE source = p.source AND external_id = p.external_id AND created_at = p.created_at LIMIT 1) d ON true
  LEFT JOIN LATERAL (
       SELECT source, text_sha256, content_sha256 FROM enriched.document_features
        WHERE source = p.source AND external_id = p.external_id AND created_at = p.created_at
          AND enrichment_version = %(version)s LIMIT 1) f ON true
"""

#: Every document whose features for a version are missing or were computed from another digest: the backlog a
#: new enrichment version queues once (a full scan, then never again for that version).
_QUEUE_VERSION = """
INSERT INTO enriched.pending_features (created_at, source, external_id, content_sha256)
SELECT d.created_at, d.source, d.external_id, d.content_sha256
  FROM core.documents d
  LEFT JOIN enriched.document_features f
    ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
   AND f.enrichment_version = %(version)s
 WHERE f.content_sha256 IS DISTINCT FROM d.content_sha256
ON CONFLICT (created_at, source, external_id) DO NOTHING
"""

#: Delete queue rows ``(source, external_id, created_at, digest)`` still queued for that digest.
_DEQUEUE = """
DELETE FROM {queue} p
 USING unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[]) AS k(s, e, c, h)
 WHERE p.created_at = k.c AND p.source = k.s AND p.external_id = k.e AND p.content_sha256 IS NOT DISTINCT FROM k.h
"""

PENDING_FEATURES = "enriched.pending_features"
PENDING_FINGERPRINTS = "enriched.pending_fingerprints"


def dequeue(cur: Any, queue: str, rows: Sequence[tuple[Key, str | None]]) -> int:
    """Delete the queue rows of ``(key, digest)`` pairs that are still queued for that digest; return how many."""
    if not rows:
        return 0
    assert queue in (PENDING_FEATURES, PENDING_FINGERPRINTS)
    cur.execute(
        _DEQUEUE.format(queue=queue),
        ([k[0] for k, _ in rows], [k[1] for k, _ in rows], [k[2] for k, _ in rows], [h for _, h in rows]),
    )
    return max(cur.rowcount, 0)


def _end_read(conn: psycopg.Connection[Any]) -> None:
    """End the transaction a read opened on a non-autocommit connection (the operators' ``connect()``), so
    every batch writes in a transaction of its own and no queue row stays locked while a batch is computed."""
    from psycopg.pq import TransactionStatus

    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.INTRANS:
        conn.commit()


def queue_version(conn: psycopg.Connection[Any], version: str) -> int | None:
    """Queue the backlog of enrichment ``version`` the first time it is used (under an advisory lock, recorded in
    ``enriched.pending_versions``); return how many documents were queued, None when it was queued before."""
    with conn.transaction():
        if conn.execute(
            "SELECT 1 FROM enriched.pending_versions WHERE enrichment_version = %s", (version,)
        ).fetchone():
            return None
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('pulse.pending_versions'), hashtext(%s))", (version,)
        )
        if conn.execute(
            "SELECT 1 FROM enriched.pending_versions WHERE enrichment_version = %s", (version,)
        ).fetchone():
            return None
        queued = conn.execute(_QUEUE_VERSION, {"version": version}).rowcount
        conn.execute(
            "INSERT INTO enriched.pending_versions (enrichment_version, queued) VALUES (%s, %s)",
            (version, max(queued, 0)),
        )
    return max(queued, 0)


@dataclass
class PendingBatch:
    """One batch of the documents an enrich run must look at."""

    #: To enrich: never enriched for this version, or enriched from another text.
    enrich: list[EnrichInput] = field(default_factory=list)
    #: Of :attr:`enrich`, the keys that had features of this version for an older text (edited documents).
    edited: set[Key] = field(default_factory=set)
    #: Rewritten rows whose text is what the features describe: ``(key, text_sha256, new content_sha256)``;
    #: only the digest is recorded (:func:`confirm_features`), nothing is enriched again.
    same_text: list[tuple[Key, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.enrich) + len(self.same_text)


def pending_batch(conn: psycopg.Connection[Any], version: str, limit: int) -> PendingBatch:
    """Up to ``limit`` queued documents whose features for ``version`` are missing or out of date (see
    :data:`_PENDING`), split into those to enrich and those whose text did not change; never-enriched ones
    first, then edited ones, oldest first. Settled queue rows met on the way are deleted."""
    from pulse.enrich.pipeline import EnrichInput, text_sha256

    queue_version(conn, version)
    batch = PendingBatch()
    while True:
        rows = conn.execute(_PENDING, {"version": version, "limit": limit}).fetchall()
        _end_read(conn)
        settled: list[tuple[Key, str | None]] = []
        work = []
        for s, e, c, queued, exists, kind, title, body, url, content, stored_text, had, current in rows:
            if not exists or current:
                settled.append(((s, e, c), queued))
            else:
                work.append((had, c, s, e, kind, title, body, url, content, stored_text))
        if settled:
            with conn.transaction(), conn.cursor() as cur:
                dequeue(cur, PENDING_FEATURES, settled)
        if work or len(rows) < limit:
            break
    for had, c, s, e, kind, title, body, url, content, stored_text in sorted(work, key=lambda w: w[:4]):
        doc = EnrichInput(
            key=(s, e, c), source=s, kind=kind, title=title, body=body, url=url, content_sha256=content
        )
        digest = text_sha256(doc) if stored_text is not None else None
        if digest is not None and digest == stored_text:
            batch.same_text.append((doc.key, digest, content))
            continue
        batch.enrich.append(doc)
        if had:
            batch.edited.add(doc.key)
    return batch


def confirm_features(
    conn: psycopg.Connection[Any], version: str, rows: Sequence[tuple[Key, str, str]]
) -> int:
    """Record the new ``content_sha256`` of rewritten documents whose text is unchanged (``(key, text_sha256,
    content_sha256)``, as :attr:`PendingBatch.same_text` gives them); ``enriched_at`` stays. Returns rows
    updated: a row whose text changed again in between keeps its old digest and stays pending."""
    if not rows:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            """
            UPDATE enriched.document_features f SET content_sha256 = k.h
              FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[]) AS k(s, e, c, t, h)
             WHERE f.source = k.s AND f.external_id = k.e AND f.created_at = k.c
               AND f.enrichment_version = %s AND f.text_sha256 = k.t
            RETURNING f.source, f.external_id, f.created_at, f.content_sha256
            """,
            (
                [k[0] for k, _, _ in rows],
                [k[1] for k, _, _ in rows],
                [k[2] for k, _, _ in rows],
                [t for _, t, _ in rows],
                [h for _, _, h in rows],
                version,
            ),
        )
        confirmed = [((r[0], r[1], r[2]), r[3]) for r in cur.fetchall()]
        dequeue(cur, PENDING_FEATURES, confirmed)
        return len(confirmed)


def _ensure_partitions(conn: psycopg.Connection[Any], keys: Iterable[Key]) -> None:
    from pulse.warehouse.loader import PartitionCache

    times = [k[2] for k in keys]
    cache = PartitionCache(conn)
    for table in ("enriched.document_features", "enriched.entity_mentions", "enriched.places"):
        cache.ensure(table, times)


def _clean(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "")


def write_enrichment(
    conn: psycopg.Connection[Any],
    version: str,
    components: dict[str, str],
    docs: Sequence[EnrichInput],
    result: BatchResult,
) -> None:
    """Replace the enrichment of ``docs`` with ``result`` (one transaction): features are upserted with the
    content and text digests they were computed from; mentions, places and errors of the documents are deleted
    and written again, so an edited document keeps nothing of its old text."""
    from pulse.enrich.pipeline import text_sha256

    keys = [d.key for d in docs]
    digests = {d.key: (d.content_sha256, text_sha256(d)) for d in docs}
    with conn.transaction(), conn.cursor() as cur:
        _ensure_partitions(conn, keys)
        cur.executemany(
            "INSERT INTO enriched.component_versions (enrichment_version, component, version) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(version, c, v) for c, v in sorted(components.items())],
        )
        # Re-enrichment (a new version, an edited text) replaces mentions, places and errors of the documents.
        for table in ("enriched.entity_mentions", "enriched.places", "enriched.enrichment_errors"):
            cur.execute(
                f"""
                DELETE FROM {table} t USING unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(s, e, c)
                 WHERE t.source = k.s AND t.external_id = k.e AND t.created_at = k.c
                """,
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
            )
        cur.executemany(
            """
            INSERT INTO enriched.document_features
                (source, external_id, created_at, enrichment_version, language, language_confidence,
                 sentiment_vader, sentiment_label, sentiment_confidence, emotions, keywords, topic,
                 topic_confidence, sarcasm, content_sha256, text_sha256, sentiment_basis)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, external_id, created_at) DO UPDATE SET
                enrichment_version = EXCLUDED.enrichment_version, language = EXCLUDED.language,
                language_confidence = EXCLUDED.language_confidence, sentiment_vader = EXCLUDED.sentiment_vader,
                sentiment_label = EXCLUDED.sentiment_label, sentiment_confidence = EXCLUDED.sentiment_confidence,
                emotions = EXCLUDED.emotions, keywords = EXCLUDED.keywords, topic = EXCLUDED.topic,
                topic_confidence = EXCLUDED.topic_confidence, sarcasm = EXCLUDED.sarcasm,
                sentiment_basis = EXCLUDED.sentiment_basis, content_sha256 = EXCLUDED.content_sha256, text_sha256 = EXCLUDED.text_sha256, enriched_at = now()
            """,
            [
                (
                    *f.key,
                    version,
                    f.language,
                    f.language_confidence,
                    f.sentiment_vader,
                    f.sentiment_label,
                    f.sentiment_confidence,
                    json.dumps(f.emotions or {}),
                    [_clean(k) for k in (f.keywords or [])],
                    f.topic,
                    f.topic_confidence,
                    f.sarcasm,
                    *digests[f.key],
                    f.sentiment_basis,
                )
                for f in result.features
            ],
        )
        cur.executemany(
            """
            INSERT INTO enriched.entity_mentions
                (source, external_id, created_at, enrichment_version, entity_type, text, normalized,
                 start_offset, end_offset, sentiment)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
            """,
            [
                (
                    *m.key,
                    version,
                    m.entity_type,
                    _clean(m.text),
                    _clean(m.normalized),
                    m.start,
                    m.end,
                    m.sentiment,
                )
                for m in result.entities
            ],
        )
        cur.executemany(
            """
            INSERT INTO enriched.places (source, external_id, created_at, enrichment_version, name, lat, lon, country)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
            """,
            [(*p.key, version, _clean(p.name), p.lat, p.lon, p.country) for p in result.places],
        )
        cur.executemany(
            """
            INSERT INTO enriched.enrichment_errors (source, external_id, created_at, enrichment_version, enricher, error)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, external_id, created_at, enricher) DO UPDATE SET
                enrichment_version = EXCLUDED.enrichment_version, error = EXCLUDED.error, recorded_at = now()
            """,
            [(*e.key, version, e.enricher, _clean(e.error)[:2000]) for e in result.errors],  # type: ignore[index]
        )
        # Documents that got features leave the queue (for the digest they were read with), in this transaction
        # and after the upsert (a version change of their features queued them again: enriched.queue_other_version).
        written = {f.key for f in result.features}
        dequeue(cur, PENDING_FEATURES, [(k, digests[k][0]) for k in keys if k in written])


# ------------------------------------------------------------------------------------------------
# duplicates
# ------------------------------------------------------------------------------------------------

#: The oldest documents queued for duplicate detection, with their row and fingerprint (see :data:`_PENDING`).
_UNFINGERPRINTED = """
SELECT p.source, p.external_id, p.created_at, p.content_sha256, d.source IS NOT NULL,
       d.title, d.body, d.url, d.kind, d.content_sha256, f.source IS NOT NULL,
       f.content_sha256 IS NOT DISTINCT FROM d.content_sha256
  FROM (SELECT source, external_id, created_at, content_sha256 FROM enriched.pending_fingerprints
         ORDER BY created_at, source, external_id LIMIT %s) p
  LEFT JOIN LATERAL (
       SELECT source, title, body, url, kind, content_sha256 FROM core.documents
        WHERE source = p.source AND external_id = p.external_id AND created_at = p.created_at LIMIT 1) d ON true
  LEFT JOIN LATERAL (
       SELECT source, content_sha256 FROM enriched.document_fingerprints
        WHERE source = p.source AND external_id = p.external_id AND created_at = p.created_at LIMIT 1) f ON true
"""


class DedupDoc(NamedTuple):
    """A document to fingerprint: the text duplicate detection compares, and where it stands."""

    key: Key
    text: str
    url: str | None
    #: ``core.documents.content_sha256`` of the row read, stored with the fingerprint.
    content_sha256: str | None = None
    #: It has a fingerprint, of an earlier content: compared, and replaced only when it differs.
    fingerprinted: bool = False


#: Kinds whose links say what they are about (a link post, a tweet sharing an article, an article). A comment or
#: an issue that cites a page is not a copy of that page, so links written in their text do not link them (in
#: the local stack, comments citing the same help page otherwise chained 200 unrelated comments).
LINK_SHARING_KINDS = frozenset({"post", "tweet", "article", "link"})


def unfingerprinted(conn: psycopg.Connection[Any], limit: int) -> list[DedupDoc]:
    """Documents not yet compared for duplicates, or whose row changed since (see :data:`_UNFINGERPRINTED`).
    For kinds outside :data:`LINK_SHARING_KINDS` the URLs written in the text are removed (they still count for
    nothing else: duplicate detection normalises URLs away)."""
    from pulse.enrich.dedup import _URL_RE

    while True:
        rows = conn.execute(_UNFINGERPRINTED, (limit,)).fetchall()
        _end_read(conn)
        settled: list[tuple[Key, str | None]] = []
        work = []
        for s, e, c, queued, exists, title, body, url, kind, content, known, current in rows:
            if not exists or current:
                settled.append(((s, e, c), queued))
            else:
                work.append((bool(known), c, s, e, title, body, url, kind, content))
        if settled:
            with conn.transaction(), conn.cursor() as cur:
                dequeue(cur, PENDING_FINGERPRINTS, settled)
        if work or len(rows) < limit:
            break
    out = []
    for known, created_at, source, external_id, title, body, url, kind, content in sorted(
        work, key=lambda w: w[:4]
    ):
        text = "\n".join(t for t in (title, body) if t)
        if kind not in LINK_SHARING_KINDS:
            text = _URL_RE.sub(" ", text)
        out.append(DedupDoc((source, external_id, created_at), text, url, content, known))
    return out


#: What :func:`write_duplicates` returns: documents (newly) fingerprinted, links found, clusters created or
#: changed by them; of the documents, those fingerprinted again because their text changed; rewritten
#: documents whose fingerprint was the same (digest recorded only); clusters split or dissolved because
#: members left them.
DEDUP_STATS = ("documents", "links", "clusters_touched", "refingerprinted", "same_text", "clusters_split")

_SIG_DTYPE = "<u4"  #: stored signatures: little-endian uint32


def _sig_bytes(sig: Any) -> bytes:
    import numpy as np

    return np.ascontiguousarray(sig).astype(_SIG_DTYPE).tobytes()


def _key_arrays(keys: Sequence[Key]) -> tuple[list[str], list[str], list[datetime]]:
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]


def write_duplicates(
    conn: psycopg.Connection[Any],
    docs: Sequence[DedupDoc | tuple[Key, str, str | None]],
) -> dict[str, int]:
    """Fingerprint ``docs``, link them to each other and to every earlier document, and update the clusters.

    Exact links: same normalised-text hash or same canonical URL. Near links: a shared LSH band and a MinHash
    similarity at or above the threshold. New links only grow or merge clusters (the smallest cluster id
    survives a merge).

    A document fingerprinted before (its row was rewritten) is compared first: same text key, URL keys and
    signature, and only its new content digest is recorded. Otherwise its old fingerprint, signature and bands
    go, it leaves its cluster, what remains of that cluster is re-linked from the stored fingerprints (it may
    split, or dissolve when one member is left), and the document is then linked afresh like a new one.
    """
    import numpy as np

    from pulse.enrich import dedup

    items = [d if isinstance(d, DedupDoc) else DedupDoc(*d) for d in docs]
    all_text_keys = [dedup.exact_key(d.text) for d in items]
    all_url_keys = [_url_keys(dedup, d.url, d.text) for d in items]
    all_sigs = dedup.signatures([d.text for d in items])
    stats = dict.fromkeys(DEDUP_STATS, 0)

    with conn.transaction(), conn.cursor() as cur:
        # Every document of the batch is fingerprinted (or confirmed) here: it leaves the queue for its digest.
        dequeue(cur, PENDING_FINGERPRINTS, [(d.key, d.content_sha256) for d in items if d.content_sha256])
        same = _refresh_fingerprinted(cur, dedup, items, all_text_keys, all_url_keys, all_sigs, stats)
        active = [i for i in range(len(items)) if i not in same]
        docs_a = [items[i] for i in active]
        keys = [d.key for d in docs_a]
        text_keys = [all_text_keys[i] for i in active]
        url_keys = [all_url_keys[i] for i in active]
        sigs = all_sigs[active]
        if not keys:
            return stats
        bands = dedup.band_keys(sigs)
        # Texts too short for a text key take no part in near-duplicate links (they would all share bands).
        banded = [i for i, k in enumerate(text_keys) if k]
        threshold = float(getattr(dedup, "THRESHOLD", 0.6))
        index = {k: i for i, k in enumerate(keys)}
        links: list[tuple[Key, Key, str]] = []

        # Within the batch: the pure clustering of the batch's items.
        batch_items = [dedup.DedupInput(key=d.key, source=d.key[0], text=d.text, url=d.url) for d in docs_a]
        for cluster in dedup.find_clusters(batch_items):
            first = cluster.members[0][0]
            links += [(first, member, method) for member, method in cluster.members[1:]]
        # Against earlier documents: exact keys ...
        wanted_text = sorted({k for k in text_keys if k})
        if wanted_text:
            found = cur.execute(
                "SELECT text_key, source, external_id, created_at FROM enriched.document_fingerprints"
                " WHERE text_key = ANY(%s)",
                (wanted_text,),
            ).fetchall()
            by_text: dict[str, list[Key]] = {}
            for value, *key in found:
                by_text.setdefault(value, []).append(tuple(key))  # type: ignore[arg-type]
            links += [
                (other, keys[i], "exact_text")
                for i, k in enumerate(text_keys)
                for other in by_text.get(k or "", [])
            ]
        wanted_urls = sorted({u for us in url_keys for u in us})
        if wanted_urls:
            found = cur.execute(
                "SELECT url_keys, source, external_id, created_at FROM enriched.document_fingerprints"
                " WHERE url_keys && %s::text[]",
                (wanted_urls,),
            ).fetchall()
            by_url: dict[str, list[Key]] = {}
            for values, *key in found:
                for value in values:
                    by_url.setdefault(value, []).append(tuple(key))  # type: ignore[arg-type]
            links += [
                (other, keys[i], "canonical_url")
                for i, us in enumerate(url_keys)
                for u in us
                for other in by_url.get(u, [])
            ]
        # ... and LSH bands, verified by signature similarity.
        n_bands = bands.shape[1] if len(bands) else 0
        band_rows = [(b, int(bands[i, b])) for i in banded for b in range(n_bands)]
        if band_rows:
            found = cur.execute(
                """
                SELECT DISTINCT m.band, m.band_hash, m.source, m.external_id, m.created_at, s.signature
                  FROM unnest(%s::smallint[], %s::bigint[]) AS q(band, band_hash)
                  JOIN enriched.minhash_bands m ON m.band = q.band AND m.band_hash = q.band_hash
                  JOIN enriched.minhash_signatures s
                    ON s.source = m.source AND s.external_id = m.external_id AND s.created_at = m.created_at
                """,
                ([b for b, _ in band_rows], [h for _, h in band_rows]),
            ).fetchall()
            by_band: dict[tuple[int, int], list[tuple[Key, Any]]] = {}
            for band, band_hash, s, e, c, signature in found:
                other_sig = np.frombuffer(signature, dtype=_SIG_DTYPE).astype(sigs.dtype)
                by_band.setdefault((band, band_hash), []).append(((s, e, c), other_sig))
            seen: set[tuple[Key, Key]] = set()
            for i in banded:
                key = keys[i]
                for b in range(n_bands):
                    for other, other_sig in by_band.get((b, int(bands[i, b])), []):
                        if (other, key) in seen:
                            continue
                        seen.add((other, key))
                        if dedup.similarity(sigs[i], other_sig) >= threshold:
                            links.append((other, key, "near_duplicate"))
        stats["clusters_touched"] = _merge_clusters(cur, links)
        cur.executemany(
            "INSERT INTO enriched.document_fingerprints (source, external_id, created_at, text_key, url_keys,"
            " dedup_version, content_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    *k,
                    text_keys[index[k]],
                    url_keys[index[k]],
                    dedup.DEDUP_VERSION,
                    docs_a[index[k]].content_sha256,
                )
                for k in keys
            ],
        )
        cur.executemany(
            "INSERT INTO enriched.minhash_signatures (source, external_id, created_at, signature)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(*k, _sig_bytes(sigs[i])) for i, k in enumerate(keys)],
        )
        cur.executemany(
            "INSERT INTO enriched.minhash_bands (band, band_hash, source, external_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(b, int(bands[i, b]), *keys[i]) for i in banded for b in range(n_bands)],
        )
    stats["documents"] = len(keys)
    stats["links"] = len(links)
    return stats


def _refresh_fingerprinted(
    cur: Any,
    dedup: Any,
    items: Sequence[DedupDoc],
    text_keys: Sequence[str | None],
    url_keys: Sequence[list[str]],
    sigs: Any,
    stats: dict[str, int],
) -> set[int]:
    """Documents of ``items`` that were fingerprinted before: those whose fingerprint is unchanged get their new
    content digest (their positions are returned); the others are detached (fingerprint, signature, bands and
    cluster membership deleted) and what remains of their clusters is re-linked (:func:`_split_clusters`)."""
    import numpy as np

    known = [i for i, d in enumerate(items) if d.fingerprinted]
    if not known:
        return set()
    stored = {
        (s, e, c): (text_key, list(urls or []), bytes(signature) if signature is not None else None)
        for s, e, c, text_key, urls, signature in cur.execute(
            """
            SELECT f.source, f.external_id, f.created_at, f.text_key, f.url_keys, g.signature
              FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(s, e, c)
              JOIN enriched.document_fingerprints f ON f.source = k.s AND f.external_id = k.e AND f.created_at = k.c
              LEFT JOIN enriched.minhash_signatures g
                ON g.source = f.source AND g.external_id = f.external_id AND g.created_at = f.created_at
            """,
            _key_arrays([items[i].key for i in known]),
        )
    }
    same: set[int] = set()
    changed: list[int] = []
    for i in known:
        old = stored.get(items[i].key)
        if old is None:
            continue  # gone meanwhile: fingerprinted like a new document
        if old == (text_keys[i], list(url_keys[i]), _sig_bytes(sigs[i])):
            same.add(i)
        else:
            changed.append(i)
    if same:
        cur.execute(
            """
            UPDATE enriched.document_fingerprints f SET content_sha256 = k.h
              FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[]) AS k(s, e, c, h)
             WHERE f.source = k.s AND f.external_id = k.e AND f.created_at = k.c
            """,
            (
                *_key_arrays([items[i].key for i in sorted(same)]),
                [items[i].content_sha256 for i in sorted(same)],
            ),
        )
    if changed:
        gone = [items[i].key for i in changed]
        # Old bands from the old signature: deleted by primary key (minhash_bands has no index by document).
        old_bands = []
        for key in gone:
            text_key, _, signature = stored[key]
            if text_key and signature:
                old_sig = np.frombuffer(signature, dtype=_SIG_DTYPE).astype(np.uint32)
                old_bands += [(b, int(h), *key) for b, h in enumerate(dedup.band_keys(old_sig[None, :])[0])]
        if old_bands:
            cur.execute(
                """
                DELETE FROM enriched.minhash_bands m
                 USING unnest(%s::smallint[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[])
                       AS k(b, h, s, e, c)
                 WHERE m.band = k.b AND m.band_hash = k.h AND m.source = k.s AND m.external_id = k.e
                   AND m.created_at = k.c
                """,
                tuple(list(col) for col in zip(*old_bands, strict=True)),
            )
        for table in ("enriched.minhash_signatures", "enriched.document_fingerprints"):
            cur.execute(
                f"""
                DELETE FROM {table} t USING unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(s, e, c)
                 WHERE t.source = k.s AND t.external_id = k.e AND t.created_at = k.c
                """,
                _key_arrays(gone),
            )
        left = cur.execute(
            """
            DELETE FROM enriched.duplicate_clusters t USING unnest(%s::text[], %s::text[], %s::timestamptz[])
                   AS k(s, e, c)
             WHERE t.source = k.s AND t.external_id = k.e AND t.created_at = k.c
            RETURNING t.cluster_id
            """,
            _key_arrays(gone),
        ).fetchall()
        stats["clusters_split"] += _split_clusters(cur, dedup, sorted({cid for (cid,) in left}))
    stats["refingerprinted"] += len(changed)
    stats["same_text"] += len(same)
    return same


def _split_clusters(cur: Any, dedup: Any, cluster_ids: Sequence[str]) -> int:
    """Re-link the members left in ``cluster_ids`` after members left them, from their stored fingerprints with
    the tests used against earlier documents (same text key, a shared canonical URL, a shared LSH band with
    estimated similarity at or above the threshold). A cluster whose members still connect keeps its id and
    rows; otherwise its largest part keeps the id (ties: the part with the earliest ``created_at``), the other
    parts of two or more members get ids of their own, and members left alone leave. Returns the clusters
    split or dissolved."""

    if not cluster_ids:
        return 0
    threshold = float(getattr(dedup, "THRESHOLD", 0.6))
    members: dict[str, list[tuple[Key, str | None, list[str], bytes | None]]] = {}
    for cid, s, e, c, text_key, urls, signature in cur.execute(
        """
        SELECT c.cluster_id, c.source, c.external_id, c.created_at, f.text_key, f.url_keys, g.signature
          FROM enriched.duplicate_clusters c
          LEFT JOIN enriched.document_fingerprints f
            ON f.source = c.source AND f.external_id = c.external_id AND f.created_at = c.created_at
          LEFT JOIN enriched.minhash_signatures g
            ON g.source = c.source AND g.external_id = c.external_id AND g.created_at = c.created_at
         WHERE c.cluster_id = ANY(%s)
         ORDER BY c.cluster_id, c.source, c.external_id, c.created_at
        """,
        (list(cluster_ids),),
    ):
        members.setdefault(cid, []).append(((s, e, c), text_key, list(urls or []), signature))
    changed = 0
    for rows in members.values():
        parts = _linked_parts(dedup, rows, threshold)
        if len(rows) > 1 and len(parts) == 1:
            continue  # still one cluster
        changed += 1
        # The largest part keeps the id; between equals, the one with the earliest document.
        ordered = sorted(parts, key=lambda p: (-len(p), min((rows[i][0][2], rows[i][0]) for i in p)))
        for n, part in enumerate(ordered):
            keys = [rows[i][0] for i in part]
            if len(part) < 2:
                cur.execute(
                    "DELETE FROM enriched.duplicate_clusters WHERE source = %s AND external_id = %s"
                    " AND created_at = %s",
                    keys[0],
                )
            elif n > 0:
                cur.execute(
                    """
                    UPDATE enriched.duplicate_clusters t SET cluster_id = %s
                      FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(s, e, c)
                     WHERE t.source = k.s AND t.external_id = k.e AND t.created_at = k.c
                    """,
                    (_unused_cluster_id(cur, keys), *_key_arrays(keys)),
                )
    return changed


def _linked_parts(
    dedup: Any, rows: Sequence[tuple[Key, str | None, list[str], bytes | None]], threshold: float
) -> list[list[int]]:
    """Connected parts (positions) of ``rows`` (``(key, text_key, url_keys, signature)``) under the links of
    :func:`_split_clusters`."""
    import numpy as np

    parent = list(range(len(rows)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    groups: dict[tuple[str, str], list[int]] = {}
    for i, (_, text_key, urls, _) in enumerate(rows):
        if text_key:
            groups.setdefault(("text", text_key), []).append(i)
        for url in urls:
            groups.setdefault(("url", url), []).append(i)
    for group in groups.values():
        for other in group[1:]:
            union(group[0], other)
    near = [i for i, (_, text_key, _, signature) in enumerate(rows) if text_key and signature]
    if len(near) > 1:
        sigs = np.stack([np.frombuffer(rows[i][3], dtype=_SIG_DTYPE).astype(np.uint32) for i in near])  # type: ignore[arg-type]
        for a, b in dedup.candidate_pairs(dedup.band_keys(sigs)).tolist():
            if find(near[a]) != find(near[b]) and dedup.similarity(sigs[a], sigs[b]) >= threshold:
                union(near[a], near[b])
    parts: dict[int, list[int]] = {}
    for i in range(len(rows)):
        parts.setdefault(find(i), []).append(i)
    return list(parts.values())


def _unused_cluster_id(cur: Any, members: Sequence[Key]) -> str:
    """:func:`cluster_id_for` ``members``, unless a cluster already holds that id (its first member left it and
    now starts another): then the next salted id that is free."""
    salt = 0
    while True:
        cid = cluster_id_for(members, salt)
        if not cur.execute(
            "SELECT 1 FROM enriched.duplicate_clusters WHERE cluster_id = %s LIMIT 1", (cid,)
        ).fetchone():
            return cid
        salt += 1


def cluster_id_for(members: Sequence[Key], salt: int = 0) -> str:
    """A new cluster's id: derived from its earliest member, so the same documents give the same id (``salt``
    > 0 when that id is taken, see :func:`_unused_cluster_id`)."""
    import hashlib

    first = min(members)
    seed = f"{first[0]}|{first[1]}|{first[2].isoformat()}" + (f"|{salt}" if salt else "")
    return "dup_" + hashlib.sha256(seed.encode()).hexdigest()[:20]


def _url_keys(dedup: Any, url: str | None, text: str) -> list[str]:
    """Canonical URLs that may link documents: the document's own link and those written in its text."""
    keys = {dedup.canonical_url(u) for u in [url, *dedup.urls_in_text(text)] if u}
    return sorted(k for k in keys if k and dedup._linkable(k))


def _merge_clusters(cur: Any, links: Sequence[tuple[Key, Key, str]]) -> int:
    """Apply ``links`` to ``enriched.duplicate_clusters``: union-find over the linked documents and the clusters
    they already belong to; returns how many clusters were created or changed."""
    if not links:
        return 0
    involved = sorted({k for a, b, _ in links for k in (a, b)})
    existing = cur.execute(
        """
        SELECT c.source, c.external_id, c.created_at, c.cluster_id
          FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k(s, e, c2)
          JOIN enriched.duplicate_clusters c ON c.source = k.s AND c.external_id = k.e AND c.created_at = k.c2
        """,
        ([k[0] for k in involved], [k[1] for k in involved], [k[2] for k in involved]),
    ).fetchall()
    cluster_of: dict[Key, str] = {(s, e, c): cid for s, e, c, cid in existing}
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: Any, b: Any) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=repr)] = min(ra, rb, key=repr)

    for key, cid in cluster_of.items():
        union(("doc", key), ("cluster", cid))
    method_of: dict[Key, str] = {}
    for a, b, method in links:
        union(("doc", a), ("doc", b))
        method_of.setdefault(b, method)
    groups: dict[Any, list[Any]] = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    touched = 0
    for members in groups.values():
        old_ids = sorted(n[1] for n in members if n[0] == "cluster")
        docs = sorted(n[1] for n in members if n[0] == "doc")
        target = old_ids[0] if old_ids else _unused_cluster_id(cur, docs)
        for other in old_ids[1:]:
            cur.execute(
                "UPDATE enriched.duplicate_clusters SET cluster_id = %s WHERE cluster_id = %s",
                (target, other),
            )
        fresh = [d for d in docs if d not in cluster_of]
        cur.executemany(
            "INSERT INTO enriched.duplicate_clusters (source, external_id, created_at, cluster_id, method)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, external_id, created_at) DO UPDATE"
            " SET cluster_id = EXCLUDED.cluster_id",
            [(*d, target, method_of.get(d, "seed")) for d in fresh],
        )
        touched += 1
    return touched

"""Read documents to enrich and write what the enrichers and duplicate detection found (schema ``enriched``).

Everything here works in batches and in one transaction per batch, keyed like ``core.documents``
(``source, external_id, created_at``), so a killed task leaves no half-written document and a re-run
continues with the documents that still lack features for the current version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from pulse.enrich.pipeline import BatchResult, EnrichInput

Key = tuple[str, str, datetime]

_PENDING = """
SELECT d.source, d.external_id, d.created_at, d.kind, d.title, d.body, d.url
  FROM core.documents d
 WHERE NOT EXISTS (
       SELECT 1 FROM enriched.document_features f
        WHERE f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
          AND f.enrichment_version = %(version)s)
 ORDER BY d.created_at, d.source, d.external_id
 LIMIT %(limit)s
"""


def pending_documents(conn: psycopg.Connection[Any], version: str, limit: int) -> list[EnrichInput]:
    """Documents without features for ``version`` (never enriched, or by an older version), oldest first."""
    from pulse.enrich.pipeline import EnrichInput

    rows = conn.execute(_PENDING, {"version": version, "limit": limit}).fetchall()
    return [
        EnrichInput(key=(r[0], r[1], r[2]), source=r[0], kind=r[3], title=r[4], body=r[5], url=r[6])
        for r in rows
    ]


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
    """Replace the enrichment of ``docs`` with ``result`` (one transaction)."""
    keys = [d.key for d in docs]
    with conn.transaction(), conn.cursor() as cur:
        _ensure_partitions(conn, keys)
        cur.executemany(
            "INSERT INTO enriched.component_versions (enrichment_version, component, version) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(version, c, v) for c, v in sorted(components.items())],
        )
        # Re-enrichment (a new version) replaces mentions, places and errors of the same documents.
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
                 topic_confidence, sarcasm)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)
            ON CONFLICT (source, external_id, created_at) DO UPDATE SET
                enrichment_version = EXCLUDED.enrichment_version, language = EXCLUDED.language,
                language_confidence = EXCLUDED.language_confidence, sentiment_vader = EXCLUDED.sentiment_vader,
                sentiment_label = EXCLUDED.sentiment_label, sentiment_confidence = EXCLUDED.sentiment_confidence,
                emotions = EXCLUDED.emotions, keywords = EXCLUDED.keywords, topic = EXCLUDED.topic,
                topic_confidence = EXCLUDED.topic_confidence, sarcasm = EXCLUDED.sarcasm, enriched_at = now()
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


# ------------------------------------------------------------------------------------------------
# duplicates
# ------------------------------------------------------------------------------------------------

_UNFINGERPRINTED = """
SELECT d.source, d.external_id, d.created_at, d.title, d.body, d.url, d.kind
  FROM core.documents d
 WHERE NOT EXISTS (
       SELECT 1 FROM enriched.document_fingerprints f
        WHERE f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at)
 ORDER BY d.created_at, d.source, d.external_id
 LIMIT %s
"""


#: Kinds whose links say what they are about (a link post, a tweet sharing an article, an article). A comment or
#: an issue that cites a page is not a copy of that page, so links written in their text do not link them (in
#: the local stack, comments citing the same help page otherwise chained 200 unrelated comments).
LINK_SHARING_KINDS = frozenset({"post", "tweet", "article", "link"})


def unfingerprinted(conn: psycopg.Connection[Any], limit: int) -> list[tuple[Key, str, str | None]]:
    """Documents not yet compared for duplicates: ``(key, text, url)``, oldest first. For kinds outside
    :data:`LINK_SHARING_KINDS` the URLs written in the text are removed (they still count for nothing else:
    duplicate detection normalises URLs away)."""
    from pulse.enrich.dedup import _URL_RE

    out = []
    for source, external_id, created_at, title, body, url, kind in conn.execute(_UNFINGERPRINTED, (limit,)):
        text = "\n".join(t for t in (title, body) if t)
        if kind not in LINK_SHARING_KINDS:
            text = _URL_RE.sub(" ", text)
        out.append(((source, external_id, created_at), text, url))
    return out


def write_duplicates(
    conn: psycopg.Connection[Any],
    docs: Sequence[tuple[Key, str, str | None]],
) -> dict[str, int]:
    """Fingerprint ``docs``, link them to each other and to every earlier document, and update the clusters.

    Exact links: same normalised-text hash or same canonical URL. Near links: a shared LSH band and a MinHash
    similarity at or above the threshold. Clusters only grow or merge (the smallest cluster id survives a merge).
    """
    import numpy as np

    from pulse.enrich import dedup

    keys = [d[0] for d in docs]
    texts = [d[1] for d in docs]
    text_keys = [dedup.exact_key(t) for t in texts]
    url_keys = [_url_keys(dedup, u, t) for _, t, u in docs]
    sigs = dedup.signatures(texts)
    bands = dedup.band_keys(sigs)
    # Texts too short for a text key take no part in near-duplicate links (they would all share bands).
    banded = [i for i, k in enumerate(text_keys) if k]
    threshold = float(getattr(dedup, "THRESHOLD", 0.6))
    index = {k: i for i, k in enumerate(keys)}
    links: list[tuple[Key, Key, str]] = []

    with conn.transaction(), conn.cursor() as cur:
        # Within the batch: the pure clustering of the batch's items.
        items = [dedup.DedupInput(key=k, source=k[0], text=t, url=u) for k, t, u in docs]
        for cluster in dedup.find_clusters(items):
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
                other_sig = np.frombuffer(signature, dtype=sigs.dtype.newbyteorder("<")).astype(sigs.dtype)
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
        clusters = _merge_clusters(cur, links)
        cur.executemany(
            "INSERT INTO enriched.document_fingerprints (source, external_id, created_at, text_key, url_keys,"
            " dedup_version) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(*k, text_keys[index[k]], url_keys[index[k]], dedup.DEDUP_VERSION) for k in keys],
        )
        cur.executemany(
            "INSERT INTO enriched.minhash_signatures (source, external_id, created_at, signature)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (*k, np.ascontiguousarray(sigs[i]).astype(sigs.dtype.newbyteorder("<")).tobytes())
                for i, k in enumerate(keys)
            ],
        )
        cur.executemany(
            "INSERT INTO enriched.minhash_bands (band, band_hash, source, external_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(b, int(bands[i, b]), *keys[i]) for i in banded for b in range(n_bands)],
        )
    return {"documents": len(keys), "links": len(links), "clusters_touched": clusters}


def cluster_id_for(members: Sequence[Key]) -> str:
    """A new cluster's id: derived from its earliest member, so the same documents give the same id."""
    import hashlib

    first = min(members)
    return "dup_" + hashlib.sha256(f"{first[0]}|{first[1]}|{first[2].isoformat()}".encode()).hexdigest()[:20]


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
        target = old_ids[0] if old_ids else cluster_id_for(docs)
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

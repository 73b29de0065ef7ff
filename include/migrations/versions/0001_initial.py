"""Initial warehouse: schemas raw, core, quality, ops; raw pages, documents, quarantine, ingest runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS raw;
        CREATE SCHEMA IF NOT EXISTS core;
        CREATE SCHEMA IF NOT EXISTS quality;
        CREATE SCHEMA IF NOT EXISTS ops;
        COMMENT ON SCHEMA raw IS 'Every API response page exactly as fetched. Pipeline only: holds personal data in clear.';
        COMMENT ON SCHEMA core IS 'Parsed, validated, deduplicated records of every source. Authors are pseudonymised.';
        COMMENT ON SCHEMA quality IS 'Quarantine (dead letters) and data quality results. Pipeline and on-call.';
        COMMENT ON SCHEMA ops IS 'Pipeline bookkeeping: ingest runs, migrations version.';

        CREATE TABLE raw.api_responses (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source         text        NOT NULL,
            stream         text        NOT NULL,
            endpoint       text        NOT NULL,
            request_params jsonb       NOT NULL DEFAULT '{}',
            page_no        integer     NOT NULL,
            window_start   timestamptz,
            window_end     timestamptz,
            status_code    integer     NOT NULL,
            headers        jsonb       NOT NULL DEFAULT '{}',
            body           text        NOT NULL,
            body_sha256    text        NOT NULL,
            is_valid       boolean     NOT NULL,
            error          text,
            item_count     integer,
            next_cursor    text,
            dag_id         text,
            dag_run_id     text,
            task_try       integer,
            fetched_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX api_responses_run_idx ON raw.api_responses (source, dag_run_id, stream, page_no);
        CREATE INDEX api_responses_window_idx ON raw.api_responses (source, window_start);
        COMMENT ON TABLE raw.api_responses IS 'One row per fetched API page, stored as it arrives (a retried extract resumes after the last valid page of its run).';
        COMMENT ON COLUMN raw.api_responses.stream IS 'What was paged through, e.g. reddit new:python.';
        COMMENT ON COLUMN raw.api_responses.endpoint IS 'Request path, e.g. /r/python/new.';
        COMMENT ON COLUMN raw.api_responses.request_params IS 'Query parameters of the request (no credentials).';
        COMMENT ON COLUMN raw.api_responses.page_no IS 'Position of the page in its stream for this run, from 0.';
        COMMENT ON COLUMN raw.api_responses.window_start IS 'Start of the run''s data window (inclusive).';
        COMMENT ON COLUMN raw.api_responses.window_end IS 'End of the run''s data window (exclusive).';
        COMMENT ON COLUMN raw.api_responses.headers IS 'Response headers (rate-limit headers included).';
        COMMENT ON COLUMN raw.api_responses.body IS 'Response body text exactly as received (JSON text; cast to jsonb unless it holds \\u0000).';
        COMMENT ON COLUMN raw.api_responses.body_sha256 IS 'SHA-256 of the body bytes.';
        COMMENT ON COLUMN raw.api_responses.is_valid IS 'False when the body was not a page of the expected shape (kept as evidence, never loaded).';
        COMMENT ON COLUMN raw.api_responses.next_cursor IS 'Cursor of the next page; NULL on the last page of a stream.';
        COMMENT ON COLUMN raw.api_responses.dag_run_id IS 'Airflow run that fetched the page.';

        CREATE TABLE core.documents (
            source            text        NOT NULL,
            external_id       text        NOT NULL,
            kind              text        NOT NULL,
            channel           text,
            created_at        timestamptz NOT NULL,
            title             text,
            body              text,
            url               text,
            author_pseudonym  text,
            score             integer,
            metrics           jsonb       NOT NULL DEFAULT '{}',
            payload           jsonb       NOT NULL DEFAULT '{}',
            content_sha256    text        NOT NULL,
            raw_response_id   bigint      NOT NULL,
            dag_run_id        text        NOT NULL,
            first_loaded_at   timestamptz NOT NULL DEFAULT now(),
            loaded_at         timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, external_id)
        );
        CREATE INDEX documents_source_created_idx ON core.documents (source, created_at);
        CREATE INDEX documents_created_idx ON core.documents (created_at);
        COMMENT ON TABLE core.documents IS 'Text items of every source (posts, comments, tweets, articles), one row per source and external id.';
        COMMENT ON COLUMN core.documents.source IS 'Source system: reddit, x, newsapi, github ...';
        COMMENT ON COLUMN core.documents.external_id IS 'The item''s id in its source (Reddit fullname such as t3_abc).';
        COMMENT ON COLUMN core.documents.kind IS 'post, comment, tweet, article, issue ...';
        COMMENT ON COLUMN core.documents.channel IS 'Where the item was published: subreddit, query, feed or repository.';
        COMMENT ON COLUMN core.documents.created_at IS 'When the item was created at its source (UTC).';
        COMMENT ON COLUMN core.documents.author_pseudonym IS 'HMAC-SHA256 of source and author handle with the pipeline key; the handle itself is never stored outside raw.';
        COMMENT ON COLUMN core.documents.score IS 'Source score (Reddit score, likes ...) when it has one.';
        COMMENT ON COLUMN core.documents.metrics IS 'Engagement numbers at load time (comments, ratios ...).';
        COMMENT ON COLUMN core.documents.payload IS 'Selected source fields without personal data.';
        COMMENT ON COLUMN core.documents.content_sha256 IS 'Hash of the loaded content; an upsert only rewrites a row when it changes.';
        COMMENT ON COLUMN core.documents.raw_response_id IS 'Lineage: the raw.api_responses page this version came from.';
        COMMENT ON COLUMN core.documents.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
        COMMENT ON COLUMN core.documents.first_loaded_at IS 'When the row was first loaded.';
        COMMENT ON COLUMN core.documents.loaded_at IS 'When the row last changed.';

        CREATE TABLE quality.quarantine (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source           text        NOT NULL,
            item_key         text        NOT NULL,
            external_id      text,
            raw_response_id  bigint      NOT NULL,
            item_index       integer     NOT NULL,
            reason_code      text        NOT NULL,
            reason_detail    text,
            item             jsonb,
            dag_run_id       text        NOT NULL,
            first_seen_at    timestamptz NOT NULL DEFAULT now(),
            quarantined_at   timestamptz NOT NULL DEFAULT now(),
            resolved_at      timestamptz,
            resolution       text,
            UNIQUE (source, item_key)
        );
        CREATE INDEX quarantine_source_reason_idx ON quality.quarantine (source, reason_code);
        CREATE INDEX quarantine_open_idx ON quality.quarantine (source) WHERE resolved_at IS NULL;
        COMMENT ON TABLE quality.quarantine IS 'Dead letters: every fetched item that failed parsing or validation, once per item, with a reason code.';
        COMMENT ON COLUMN quality.quarantine.item_key IS 'The item''s identity: its external id, or sha256:<hash of the item> when it has none. Re-fetching the same bad item updates its row.';
        COMMENT ON COLUMN quality.quarantine.raw_response_id IS 'The latest raw page holding the item; with item_index it locates the original.';
        COMMENT ON COLUMN quality.quarantine.item_index IS 'Position of the item in that raw page, from 0.';
        COMMENT ON COLUMN quality.quarantine.reason_code IS 'Why: missing_id, bad_timestamp, future_timestamp, text_nul_byte, text_too_large, missing_text, bad_field, not_an_object.';
        COMMENT ON COLUMN quality.quarantine.item IS 'The item with author handles pseudonymised and long strings cut; the original is in raw.';
        COMMENT ON COLUMN quality.quarantine.resolved_at IS 'Set when the item later loaded into core (a corrected re-fetch or a replay).';
        COMMENT ON COLUMN quality.quarantine.resolution IS 'How it was resolved: loaded_later, replayed.';

        CREATE TABLE ops.ingest_runs (
            dag_id        text        NOT NULL,
            dag_run_id    text        NOT NULL,
            source        text        NOT NULL,
            window_start  timestamptz NOT NULL,
            window_end    timestamptz NOT NULL,
            pages         integer     NOT NULL DEFAULT 0,
            items         integer     NOT NULL DEFAULT 0,
            loaded        integer     NOT NULL DEFAULT 0,
            changed       integer     NOT NULL DEFAULT 0,
            quarantined   integer     NOT NULL DEFAULT 0,
            extracted_at  timestamptz,
            loaded_at     timestamptz,
            PRIMARY KEY (dag_id, dag_run_id)
        );
        COMMENT ON TABLE ops.ingest_runs IS 'One row per ingest DAG run: its window and what it fetched, loaded and quarantined.';
        COMMENT ON COLUMN ops.ingest_runs.items IS 'Items in the valid pages of the run.';
        COMMENT ON COLUMN ops.ingest_runs.loaded IS 'Items upserted into core (new, changed or unchanged).';
        COMMENT ON COLUMN ops.ingest_runs.changed IS 'Rows inserted or rewritten because their content changed.';
        COMMENT ON COLUMN ops.ingest_runs.quarantined IS 'Items sent to quality.quarantine.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS ops.ingest_runs;
        DROP TABLE IF EXISTS quality.quarantine;
        DROP TABLE IF EXISTS core.documents;
        DROP TABLE IF EXISTS raw.api_responses;
        DROP SCHEMA IF EXISTS quality;
        DROP SCHEMA IF EXISTS core;
        DROP SCHEMA IF EXISTS raw;
        """
    )

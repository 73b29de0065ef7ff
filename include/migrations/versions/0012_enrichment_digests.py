"""Edited documents are enriched again: the content digest each enrichment and fingerprint was computed from.

``enriched.document_features`` gets ``content_sha256`` (the ``core.documents`` row's digest the features were
computed or last confirmed from) and ``text_sha256`` (the text the enrichers read); ``enriched.
document_fingerprints`` gets ``content_sha256``. When the loader rewrites a document its digest differs, and
the next enrich run looks at it again (``pulse.warehouse.enriched``). No backfill on purpose: NULL means "not
known yet", so the first enrich run after this migration checks every existing row once (features are
recomputed once, like a version bump; fingerprints are recomputed in memory and rewritten only when they
differ), which also repairs rows that went stale before it. No new index: both comparisons join on the primary
keys.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE enriched.document_features ADD COLUMN content_sha256 text, ADD COLUMN text_sha256 text;
        ALTER TABLE enriched.document_fingerprints ADD COLUMN content_sha256 text;

        COMMENT ON COLUMN enriched.document_features.content_sha256 IS 'content_sha256 of the core.documents row these features were computed (or last confirmed) from; when the loader rewrites the row it differs, and the next enrich run looks at the document again (NULL: not known yet, checked on the next run).';
        COMMENT ON COLUMN enriched.document_features.text_sha256 IS 'SHA-256 of the text the features were computed from (title + newline + body, as enriched); a rewrite that leaves it the same (score, metrics) is not enriched again.';
        COMMENT ON COLUMN enriched.document_features.enriched_at IS 'When the features were last computed.';
        COMMENT ON COLUMN enriched.document_fingerprints.content_sha256 IS 'content_sha256 of the core.documents row the keys were computed from; when it differs the document is fingerprinted and clustered again (NULL: not known yet, checked on the next run).';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        COMMENT ON COLUMN enriched.document_features.enriched_at IS 'When the row was written.';
        ALTER TABLE enriched.document_fingerprints DROP COLUMN content_sha256;
        ALTER TABLE enriched.document_features DROP COLUMN text_sha256, DROP COLUMN content_sha256;
        """
    )

"""Monthly partitions on event time for core.documents and core.market_bars, kept ahead by a function.

* ``ops.ensure_month_partitions(parent, from, to)`` creates every missing monthly partition between two
  instants (UTC months), moving rows the default partition already holds for a new month into it. It takes
  an advisory lock per table, so loaders and the maintenance DAG can call it concurrently.
* Each partitioned table has a ``<table>_default`` partition. Nothing should land there (the loader creates
  the partitions a batch needs first); ``ops.default_partition_rows()`` counts what did, and the
  ``warehouse_maintenance`` DAG alerts on it.
* Key text columns (source, external_id; symbol, market, interval) use the "C" collation: identifiers need
  byte order, not linguistic order, and their index operations get cheaper.
* A unique key of a partitioned table must contain the partition column, so the key of ``core.documents``
  becomes ``(source, external_id, created_at)``: ``created_at`` is the item's creation time at its source,
  which the sources never change (see docs/warehouse.md).

The existing rows are copied into the new tables inside this migration's transaction; nothing is lost, and a
test upgrades a populated warehouse and compares every row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: How many months ahead of the current one partitions exist after this migration (the maintenance DAG
#: keeps it so).
MONTHS_AHEAD = 3

ENSURE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION ops.ensure_month_partitions(parent regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    nsp        text;
    rel        text;
    key_col    text;
    month      timestamp;   -- first instant of a UTC month, as a UTC wall-clock timestamp
    last_month timestamp;
    part       text;
    lo         timestamptz;
    hi         timestamptz;
    dflt       regclass;
    waiting    bigint;
    created    integer := 0;
    locked     boolean := false;
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RETURN 0;
    END IF;
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    key_col := substring(pg_get_partkeydef(parent) FROM '^RANGE \((\w+)\)$');
    IF key_col IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent;
    END IF;
    month := date_trunc('month', least(from_ts, to_ts) AT TIME ZONE 'UTC');
    last_month := date_trunc('month', greatest(from_ts, to_ts) AT TIME ZONE 'UTC');
    WHILE month <= last_month LOOP
        part := format('%s_p%s', rel, to_char(month, 'YYYY_MM'));
        IF to_regclass(format('%I.%I', nsp, part)) IS NULL THEN
            IF NOT locked THEN
                -- One creator per table at a time; re-check after waiting for the lock.
                PERFORM pg_advisory_xact_lock(hashtext('pulse.partitions'), hashtext(parent::text));
                locked := true;
                CONTINUE;
            END IF;
            lo := month AT TIME ZONE 'UTC';
            hi := (month + interval '1 month') AT TIME ZONE 'UTC';
            SELECT i.inhrelid::regclass INTO dflt
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = parent AND c.relpartbound IS NOT NULL
               AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
            waiting := 0;
            IF dflt IS NOT NULL THEN
                EXECUTE format('SELECT count(*) FROM %s WHERE %I >= $1 AND %I < $2', dflt, key_col, key_col)
                   INTO waiting USING lo, hi;
            END IF;
            IF waiting = 0 THEN
                EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                               nsp, part, parent, lo, hi);
            ELSE
                -- Rows for this month sit in the default partition: move them into the new partition.
                EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               nsp, part, parent);
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                               'INSERT INTO %I.%I SELECT * FROM moved', dflt, key_col, key_col, nsp, part)
                   USING lo, hi;
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                               parent, nsp, part, lo, hi);
                RAISE NOTICE 'moved % rows of % from % into %', waiting, to_char(month, 'YYYY-MM'), dflt, part;
            END IF;
            EXECUTE format('COMMENT ON TABLE %I.%I IS %L', nsp, part,
                           format('Partition of %s for %s (UTC); query the parent table.', parent,
                                  to_char(month, 'YYYY-MM')));
            created := created + 1;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END
$fn$;
COMMENT ON FUNCTION ops.ensure_month_partitions(regclass, timestamptz, timestamptz) IS
    'Create the missing monthly (UTC) partitions of a range-partitioned table between two instants, moving rows the default partition holds for them. Returns how many it created.';

CREATE OR REPLACE FUNCTION ops.default_partition_rows()
RETURNS TABLE (parent regclass, default_partition regclass, rows bigint, min_key text, max_key text)
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    r record;
    key_col text;
BEGIN
    FOR r IN
        SELECT i.inhparent::regclass AS parent, i.inhrelid::regclass AS part
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
         ORDER BY 1::text
    LOOP
        key_col := substring(pg_get_partkeydef(r.parent) FROM '^RANGE \((\w+)\)$');
        parent := r.parent;
        default_partition := r.part;
        EXECUTE format('SELECT count(*), min(%I)::text, max(%I)::text FROM %s', key_col, key_col, r.part)
           INTO rows, min_key, max_key;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION ops.default_partition_rows() IS
    'Rows in the default partition of every partitioned table (should be 0: the loader creates partitions first), with the key range they cover.';
"""

DOCUMENTS = """
CREATE TABLE core.documents (
    source            text COLLATE "C" NOT NULL,
    external_id       text COLLATE "C" NOT NULL,
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
    PRIMARY KEY (source, external_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX documents_source_created_idx ON core.documents (source, created_at);
CREATE TABLE core.documents_default PARTITION OF core.documents DEFAULT;
COMMENT ON TABLE core.documents_default IS 'Default partition of core.documents: must stay empty (watched by warehouse_maintenance).';
"""

MARKET_BARS = """
CREATE TABLE core.market_bars (
    source           text        NOT NULL,
    symbol           text COLLATE "C" NOT NULL,
    market           text COLLATE "C" NOT NULL,
    asset_class      text        NOT NULL,
    interval         text COLLATE "C" NOT NULL,
    ts               timestamptz NOT NULL,
    open             numeric,
    high             numeric,
    low              numeric,
    close            numeric,
    volume           numeric,
    content_sha256   text        NOT NULL,
    raw_response_id  bigint      NOT NULL,
    dag_run_id       text        NOT NULL,
    first_loaded_at  timestamptz NOT NULL DEFAULT now(),
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, market, interval, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE core.market_bars_default PARTITION OF core.market_bars DEFAULT;
COMMENT ON TABLE core.market_bars_default IS 'Default partition of core.market_bars: must stay empty (watched by warehouse_maintenance).';
"""


def _columns(table: str) -> list[str]:
    rows = op.get_bind().execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        ),
        {"t": table},
    )
    return [r[0] for r in rows]


def _repartition(table: str, old: str, create_sql: str, key_col: str, drop_indexes: list[str]) -> None:
    """Rename ``table`` to ``old``, create the partitioned ``table``, copy rows and comments, drop ``old``."""
    schema, name = table.split(".")
    bind = op.get_bind()
    op.execute(f"ALTER TABLE {table} RENAME TO {old.split('.')[1]}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {name}_pkey TO {old.split('.')[1]}_pkey")
    for index in drop_indexes:
        op.execute(f"DROP INDEX IF EXISTS {schema}.{index}")
    op.execute(create_sql)
    # Partitions for every month the data covers and the months ahead.
    op.execute(
        f"SELECT ops.ensure_month_partitions('{table}', "
        f"coalesce((SELECT min({key_col}) FROM {old}), now()), "
        f"greatest((SELECT max({key_col}) FROM {old}), now() + interval '{MONTHS_AHEAD} months'))"
    )
    cols = ", ".join(_columns(old))
    op.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {old}")
    before = bind.execute(text(f"SELECT count(*) FROM {old}")).scalar()
    after = bind.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    if before != after:  # pragma: no cover - a guard, the INSERT either copies every row or fails
        raise RuntimeError(f"{table}: copied {after} of {before} rows; aborting the migration")
    # Carry the table and column comments over (the dictionary is generated from them).
    op.execute(
        f"""
        DO $$
        DECLARE r record;
        BEGIN
            EXECUTE format('COMMENT ON TABLE {table} IS %L', obj_description('{old}'::regclass, 'pg_class'));
            FOR r IN SELECT attname, col_description('{old}'::regclass, attnum) AS c
                       FROM pg_attribute WHERE attrelid = '{old}'::regclass AND attnum > 0 AND NOT attisdropped
            LOOP
                IF r.c IS NOT NULL THEN
                    EXECUTE format('COMMENT ON COLUMN {table}.%I IS %L', r.attname, r.c);
                END IF;
            END LOOP;
        END $$;
        """
    )
    op.execute(f"DROP TABLE {old}")


def upgrade() -> None:
    op.execute(ENSURE_FUNCTION)
    _repartition(
        "core.documents",
        "core.documents_unpartitioned",
        DOCUMENTS,
        "created_at",
        ["documents_source_created_idx", "documents_created_idx"],
    )
    op.execute(
        "COMMENT ON TABLE core.documents IS 'Text items of every source (posts, comments, tweets, articles, "
        "issues), one row per source, external id and creation time; partitioned by month of created_at (UTC).'"
    )
    _repartition(
        "core.market_bars", "core.market_bars_unpartitioned", MARKET_BARS, "ts", ["market_bars_ts_idx"]
    )
    op.execute(
        "COMMENT ON TABLE core.market_bars IS 'OHLCV bars of stocks and crypto, one row per symbol, market, "
        "interval and bar start; partitioned by month of ts (UTC).'"
    )


def downgrade() -> None:
    for table in ("core.documents", "core.market_bars"):
        schema, name = table.split(".")
        op.execute(f"CREATE TABLE {schema}.{name}_flat (LIKE {table} INCLUDING DEFAULTS INCLUDING COMMENTS)")
        op.execute(f"INSERT INTO {schema}.{name}_flat SELECT * FROM {table}")
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {schema}.{name}_flat RENAME TO {name}")
    op.execute(
        """
        ALTER TABLE core.documents ADD PRIMARY KEY (source, external_id);
        CREATE INDEX documents_source_created_idx ON core.documents (source, created_at);
        CREATE INDEX documents_created_idx ON core.documents (created_at);
        ALTER TABLE core.market_bars ADD PRIMARY KEY (symbol, market, interval, ts);
        CREATE INDEX market_bars_ts_idx ON core.market_bars (ts);
        DROP FUNCTION IF EXISTS ops.default_partition_rows();
        DROP FUNCTION IF EXISTS ops.ensure_month_partitions(regclass, timestamptz, timestamptz);
        """
    )

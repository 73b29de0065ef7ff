"""Alembic environment for the warehouse: plain SQL migrations, version table in ``ops``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        connection.execute(text("CREATE SCHEMA IF NOT EXISTS ops"))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema="ops",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run against a database")
run_migrations_online()

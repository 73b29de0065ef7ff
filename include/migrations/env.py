"""Alembic environment for the warehouse: plain SQL migrations, version table in ``ops``.

Runs on the SQLAlchemy connection passed in ``config.attributes["connection"]`` when there is one (the alembic
cookbook's "sharing a connection"; pulse.warehouse.bootstrap migrates on the connection that holds its advisory
lock), otherwise on an engine of its own built from ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

config = context.config


def run_migrations_on(connection: Connection) -> None:
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS ops"))
    connection.commit()
    context.configure(
        connection=connection,
        version_table_schema="ops",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_migrations_on(given)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        run_migrations_on(connection)


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run against a database")
run_migrations_online()

"""Apply the warehouse migrations (Alembic scripts in ``include/migrations``).

Usage: ``python -m pulse.warehouse.migrate upgrade [REVISION]`` (default ``head``), ``downgrade REVISION``,
``current`` or ``history``. The target database comes from ``PULSE_WAREHOUSE_DSN`` or the Airflow connection
``warehouse_default``. Alembic keeps its version table in ``ops.alembic_version``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parents[3] / "include" / "migrations"


def alembic_config(dsn: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    """Move the warehouse at ``dsn`` forward to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(dsn), revision)


def main(argv: list[str] | None = None) -> int:
    from pulse.warehouse.db import dsn_from_connection

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["upgrade", "downgrade", "current", "history"])
    parser.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)
    from alembic import command

    cfg = alembic_config(dsn_from_connection())
    if args.action == "upgrade":
        command.upgrade(cfg, args.revision)
    elif args.action == "downgrade":
        command.downgrade(cfg, args.revision)
    elif args.action == "current":
        command.current(cfg, verbose=True)
    else:
        command.history(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Apply the warehouse migrations (Alembic scripts in ``include/migrations``).

Usage: ``python -m pulse.warehouse.migrate upgrade [REVISION]`` (default ``head``), ``downgrade REVISION``,
``current``, ``history`` or ``ensure`` (what every DAG's ``warehouse_ready`` task does: to head under the
advisory lock, privileges checked first; :mod:`pulse.warehouse.bootstrap`). The target database comes from ``PULSE_WAREHOUSE_DSN`` or the Airflow connection
``warehouse_default``. Alembic keeps its version table in ``ops.alembic_version``.
"""

from __future__ import annotations

import argparse
import sys

from pulse.warehouse.bootstrap import MIGRATIONS


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
    parser.add_argument("action", choices=["upgrade", "downgrade", "current", "history", "ensure"])
    parser.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args(argv)
    if args.action == "ensure":
        from pulse.warehouse.bootstrap import WarehouseNotReady, ensure_warehouse

        try:
            print(f"warehouse: {ensure_warehouse()}")
        except WarehouseNotReady as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
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

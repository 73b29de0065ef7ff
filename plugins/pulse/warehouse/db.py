"""Connections to the warehouse.

The DSN comes from the Airflow connection ``warehouse_default`` (or another id), or, for command-line tools
that run outside Airflow, from ``PULSE_WAREHOUSE_DSN``. Nothing here holds a secret.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

WAREHOUSE_CONN_ID = "warehouse_default"


def dsn_from_connection(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """Return a libpq URI for ``conn_id``: ``PULSE_WAREHOUSE_DSN`` wins, then the Airflow connection."""
    if conn_id == WAREHOUSE_CONN_ID and os.environ.get("PULSE_WAREHOUSE_DSN"):
        return os.environ["PULSE_WAREHOUSE_DSN"]
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    from urllib.parse import quote

    auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@" if conn.login else ""
    return f"postgresql://{auth}{conn.host or 'localhost'}:{conn.port or 5432}/{conn.schema or 'postgres'}"


def connect(conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a psycopg 3 connection to the warehouse (``application_name`` says who is connected)."""
    import psycopg

    kwargs.setdefault("application_name", "pulse")
    return psycopg.connect(dsn_from_connection(conn_id), **kwargs)

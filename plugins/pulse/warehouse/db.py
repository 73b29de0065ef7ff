"""Connections to the warehouse: one path for every task.

Every connection goes through the Airflow connection ``warehouse_default`` (or another id), read the way the
Postgres provider reads it (:class:`~airflow.providers.postgres.hooks.postgres.PostgresHook`): host, port,
login, password and schema, plus every extra of the connection as a libpq parameter (``sslmode``,
``sslrootcert``, ``options``, ``application_name``, ``connect_timeout``, ``keepalives`` ...; the provider's
own keys such as ``iam`` or ``cursor`` are not libpq parameters and are left out, as the provider does).
Command-line tools that run outside Airflow use ``PULSE_WAREHOUSE_DSN`` instead: it wins for the default
connection id. Nothing here holds a secret.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    import psycopg

WAREHOUSE_CONN_ID = "warehouse_default"
#: Who is connected, unless the connection's extras say otherwise.
APPLICATION_NAME = "pulse"


def _env_dsn(conn_id: str) -> str | None:
    if conn_id == WAREHOUSE_CONN_ID and os.environ.get("PULSE_WAREHOUSE_DSN"):
        return os.environ["PULSE_WAREHOUSE_DSN"]
    return None


def connection_params(conn_id: str = WAREHOUSE_CONN_ID) -> dict[str, Any]:
    """libpq parameters of the Airflow connection ``conn_id``, as ``PostgresHook.get_conn`` builds them.

    Empty fields fall back to ``localhost``, ``5432`` and the database ``postgres``.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    conn = hook.connection
    params: dict[str, Any] = {
        "host": conn.host or "localhost",
        "port": conn.port or 5432,
        "dbname": conn.schema or "postgres",
    }
    if conn.login:
        params["user"] = conn.login
        params["password"] = conn.password or ""
    for name, value in conn.extra_dejson.items():
        if name not in hook.ignored_extra_options:
            params[name] = value
    return params


def dsn_from_connection(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """A libpq URI for ``conn_id`` (extras as query parameters): ``PULSE_WAREHOUSE_DSN`` wins, then the
    Airflow connection (:func:`connection_params`)."""
    env = _env_dsn(conn_id)
    if env:
        return env
    params = connection_params(conn_id)
    host, port, dbname = params.pop("host"), params.pop("port"), params.pop("dbname")
    user, password = params.pop("user", None), params.pop("password", None)
    auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
    query = urlencode({k: str(v) for k, v in params.items()}, quote_via=quote)
    return f"postgresql://{auth}{host}:{port}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def connect(conn_id: str = WAREHOUSE_CONN_ID, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a psycopg 3 connection to the warehouse; ``kwargs`` (``autocommit``, libpq parameters) win over
    the connection's settings. ``application_name`` says who is connected (``pulse`` unless set)."""
    import psycopg

    env = _env_dsn(conn_id)
    if env:
        kwargs.setdefault("application_name", APPLICATION_NAME)
        return psycopg.connect(env, **kwargs)
    params = {"application_name": APPLICATION_NAME, **connection_params(conn_id), **kwargs}
    return psycopg.connect(**params)

"""Every task reaches the warehouse through its Airflow connection, extras included (pulse.warehouse.db)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from pulse.warehouse import db

EXTRAS = {
    "application_name": "pulse-extra-test",
    "options": "-c statement_timeout=4321",
    "connect_timeout": 7,
    "sslmode": "disable",
    "cursor": "dictcursor",  # the provider's own key, not a libpq parameter: left out like PostgresHook does
}


@pytest.fixture
def with_extras(warehouse: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("PULSE_WAREHOUSE_DSN", raising=False)
    conn = {
        "conn_type": "postgres",
        "host": warehouse["host"],
        "port": warehouse["port"],
        "login": warehouse["user"],
        "password": warehouse["password"],
        "schema": warehouse["dbname"],
        "extra": EXTRAS,
    }
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_EXTRAS", json.dumps(conn))
    return "warehouse_extras"


def _settings(conn: psycopg.Connection[Any]) -> tuple[str, str, str, bool]:
    name, timeout = conn.execute(
        "SELECT current_setting('application_name'), current_setting('statement_timeout')"
    ).fetchone()
    return name, timeout, conn.info.get_parameters().get("connect_timeout", ""), conn.pgconn.ssl_in_use


def test_the_connections_extras_reach_every_connection(with_extras: str) -> None:
    with db.connect(with_extras, autocommit=True) as conn:
        assert _settings(conn) == ("pulse-extra-test", "4321ms", "7", False)
        assert conn.autocommit
    # The URI (alembic, retention) carries the same settings.
    dsn = db.dsn_from_connection(with_extras)
    assert "cursor" not in dsn
    with psycopg.connect(dsn) as conn:
        assert _settings(conn) == ("pulse-extra-test", "4321ms", "7", False)


def test_arguments_win_over_extras_and_pulse_names_itself_by_default(
    warehouse: dict[str, Any], with_extras: str
) -> None:
    with db.connect(with_extras, application_name="pulse-arg") as conn:
        assert _settings(conn)[0] == "pulse-arg"
    with db.connect() as conn:  # warehouse_default: no extras
        assert _settings(conn)[:2] == ("pulse", "0")


def test_the_cli_dsn_wins_for_the_default_connection_only(
    warehouse: dict[str, Any], with_extras: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = warehouse
    cli = (
        f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}?application_name=cli"
    )
    monkeypatch.setenv("PULSE_WAREHOUSE_DSN", cli)
    assert db.dsn_from_connection() == cli
    with db.connect(application_name="cli") as conn:
        assert _settings(conn)[0] == "cli"
    with db.connect(with_extras) as conn:
        assert _settings(conn)[0] == "pulse-extra-test"

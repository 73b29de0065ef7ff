"""The warehouse bootstraps itself (pulse.warehouse.bootstrap.ensure_warehouse): empty -> head under a lock,
the fast path at head, concurrent callers, a role without the privileges, an older revision."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pulse.warehouse import bootstrap
from pulse.warehouse.bootstrap import WarehouseNotReady, ensure_warehouse, missing_privileges
from pulse.warehouse.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
HEAD = bootstrap.script_directory().get_current_head()
_ids = itertools.count()


@pytest.fixture
def use_dsn(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point ``warehouse_default`` at a URI for one test (PULSE_WAREHOUSE_DSN wins for the default id)."""

    def point(uri: str) -> None:
        monkeypatch.setenv("PULSE_WAREHOUSE_DSN", uri)

    return point


def version(uri: str) -> str | None:
    with psycopg.connect(uri) as conn:
        if not conn.execute("SELECT to_regclass('ops.alembic_version')").fetchone()[0]:
            return None
        row = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone()
        return row[0] if row else None


def test_empty_database_to_head_then_the_fast_path(
    fresh_db: Callable[[], str], use_dsn: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = fresh_db()
    use_dsn(uri)
    before = bootstrap.locks_taken
    assert ensure_warehouse() == f"migrated base -> {HEAD}"
    assert version(uri) == HEAD
    assert bootstrap.locks_taken == before + 1
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT to_regclass('core.documents')").fetchone()[0] is not None

    # At head: one query, no lock, no migration.
    def no_lock(*args: Any) -> str:
        raise AssertionError("the fast path took the lock")

    monkeypatch.setattr(bootstrap, "_migrate_under_lock", no_lock)
    assert ensure_warehouse() == f"at head {HEAD}"
    assert bootstrap.locks_taken == before + 1


def test_an_older_revision_is_upgraded(fresh_db: Callable[[], str], use_dsn: Callable[[str], None]) -> None:
    uri = fresh_db()
    upgrade(uri, "0008")
    with psycopg.connect(uri) as conn:
        conn.execute(
            "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
            " VALUES ('x', 's', '2026-11-28 10:00+00', '2026-11-28 11:00+00', 'ingested', 'r')"
        )
    use_dsn(uri)
    assert ensure_warehouse() == f"migrated 0008 -> {HEAD}"
    assert version(uri) == HEAD
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT count(*) FROM ops.coverage").fetchone() == (1,)


def test_migrations_are_logged(
    fresh_db: Callable[[], str], use_dsn: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    uri = fresh_db()
    upgrade(uri, "0011")
    use_dsn(uri)
    with caplog.at_level("INFO", logger="pulse.warehouse.bootstrap"):
        ensure_warehouse()
    applied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied migration")]
    assert [m.split()[2].rstrip(":") for m in applied] == ["0012", "0013", "0014", "0015", "0016", "0017"][
        : len(applied)
    ]
    assert applied and applied[-1].startswith(f"applied migration {HEAD}:")


CALLER = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
from pulse.warehouse.bootstrap import ensure_warehouse
print("OUTCOME=" + ensure_warehouse())
"""


def test_concurrent_callers_on_an_empty_database_migrate_once(
    fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    uri = fresh_db()
    go = tmp_path / "go"
    env = {**os.environ, "PULSE_WAREHOUSE_DSN": uri, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, str(go)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    time.sleep(3)  # every process has imported what it needs and waits for the start
    go.touch()
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-3000:]
        outcomes.append(out.decode().split("OUTCOME=")[-1].strip())
    assert sorted(outcomes)[0] == f"at head {HEAD} (migrated by another task)", outcomes
    assert outcomes.count(f"migrated base -> {HEAD}") == 1, outcomes
    assert all(o.startswith(f"at head {HEAD}") for o in outcomes if not o.startswith("migrated")), outcomes
    assert version(uri) == HEAD


@pytest.fixture
def weak_role(warehouse: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """A login role without CREATEROLE and an empty database it may connect to but not create schemas in,
    owned by the superuser (as a DBA would leave it). Yields (uri, role, database)."""
    from dev import stack

    n = next(_ids)
    role, dbname = f"weak_{n}", f"weak_db_{n}"
    stack._admin_sql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    stack._admin_sql(f"DROP ROLE IF EXISTS {role}")
    stack._admin_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'weak-pw' NOCREATEROLE")
    stack._admin_sql(f"CREATE DATABASE {dbname}")
    d = warehouse
    yield f"postgresql://{role}:weak-pw@{d['host']}:{d['port']}/{dbname}", role, dbname
    stack._admin_sql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    stack._admin_sql(f"DROP ROLE IF EXISTS {role}")


def test_a_role_without_the_privileges_gets_the_dba_statements_and_nothing_changes(
    weak_role: tuple[str, str, str], use_dsn: Callable[[str], None]
) -> None:
    uri, role, dbname = weak_role
    use_dsn(uri)
    with pytest.raises(WarehouseNotReady) as err:
        ensure_warehouse()
    message = str(err.value)
    assert f"GRANT CREATE ON DATABASE {dbname} TO {role};" in message
    assert "nothing was changed" in message
    # The analyst role exists in this cluster (roles are per cluster), so only membership is suggested.
    assert f"GRANT analyst TO {role};  -- optional" in message
    assert "CREATE ROLE" not in message
    with psycopg.connect(uri) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        ).fetchall()
    assert schemas == [("public",)]


def test_a_missing_group_role_needs_createrole(weak_role: tuple[str, str, str]) -> None:
    """The analyst role exists in the session's cluster; an absent name stands for it here."""
    uri, role, dbname = weak_role
    with psycopg.connect(uri) as conn:
        required, optional = missing_privileges(conn, analyst="absent_analyst")
    assert required == [
        f"GRANT CREATE ON DATABASE {dbname} TO {role};",
        "CREATE ROLE absent_analyst NOLOGIN;",
    ]
    assert optional == [f"GRANT absent_analyst TO {role};"]


def test_the_pipeline_role_needs_nothing_from_a_dba(warehouse: dict[str, Any]) -> None:
    """The local stack's role owns its database and is an analyst: nothing to ask."""
    with psycopg.connect(**warehouse) as conn:
        assert missing_privileges(conn) == ([], [])
        assert missing_privileges(conn, analyst="absent_analyst") == (
            ["CREATE ROLE absent_analyst NOLOGIN;"],
            [f"GRANT absent_analyst TO {warehouse['user']};"],
        )


def test_a_missing_database_names_the_statement(
    warehouse: dict[str, Any], use_dsn: Callable[[str], None]
) -> None:
    d = warehouse
    use_dsn(f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/no_such_db")
    with pytest.raises(WarehouseNotReady, match=f"CREATE DATABASE no_such_db OWNER {d['user']};"):
        ensure_warehouse()


def test_a_revision_this_code_does_not_know_is_refused(
    fresh_db: Callable[[], str], use_dsn: Callable[[str], None]
) -> None:
    uri = fresh_db()
    upgrade(uri, "head")
    with psycopg.connect(uri) as conn:
        conn.execute("UPDATE ops.alembic_version SET version_num = '0099'")
    use_dsn(uri)
    with pytest.raises(WarehouseNotReady, match="0099"):
        ensure_warehouse()
    assert version(uri) == "0099"


def test_the_command_line_ensure_says_what_a_dba_must_run(weak_role: tuple[str, str, str]) -> None:
    """``python -m pulse.warehouse.migrate ensure``: the tools' way to the same bootstrap."""
    uri, role, dbname = weak_role
    env = {**os.environ, "PULSE_WAREHOUSE_DSN": uri, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    res = subprocess.run(
        [sys.executable, "-m", "pulse.warehouse.migrate", "ensure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"GRANT CREATE ON DATABASE {dbname} TO {role};" in res.stderr

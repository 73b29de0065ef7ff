"""The warehouse brings itself to the migrations' head from Airflow: :func:`ensure_warehouse`.

Every DAG's first task (``warehouse_ready``, a setup task built by :func:`pulse.dag_defaults.warehouse_ready`)
calls it, so a fresh deployment with an empty warehouse database migrates on its first run, and a deployment of
new code migrates before any task of the new code touches the database.

* Fast path (every run, once the warehouse is at head): one query of ``ops.alembic_version`` compared with the
  head of ``include/migrations``. No lock.
* Behind (or ``ops.alembic_version`` missing): a session-level ``pg_advisory_lock(LOCK_KEY)`` on a dedicated
  connection; under it the version is read again (another task may have migrated while this one waited), the
  role's privileges are checked, and the migrations run on that same connection (include/migrations/env.py uses
  the connection it is given), one transaction per migration. Then the lock is released. Concurrent callers wait
  on the lock and find the head.
* Privileges are checked before anything changes: CREATE on the database (the migrations create schemas) and,
  while the ``analyst`` group role (migration 0005) does not exist, CREATEROLE. When one is missing,
  :class:`WarehouseNotReady` lists every statement a DBA must run, with the real role and database names.
  Membership of the pipeline's role in ``analyst`` (what the local stack grants, for ``make psql ROLE=analyst``)
  is not needed by the pipeline: it is granted when the role may, otherwise logged as a suggestion.

Heavy imports (alembic, SQLAlchemy, psycopg) happen inside the functions: DAG files import this module's
caller, never this module's dependencies, at parse time.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulse.warehouse.db import WAREHOUSE_CONN_ID

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

#: The Alembic scripts (``include/migrations``).
MIGRATIONS = Path(__file__).resolve().parents[3] / "include" / "migrations"

log = logging.getLogger(__name__)

#: The advisory lock every migrating caller takes (any fixed bigint; "pulse" in ASCII, then 1).
LOCK_KEY = 0x70756C7365_000001
#: The group role migration 0005 creates (or a DBA creates first).
ANALYST_ROLE = "analyst"
#: How many times this process took the lock (tests read it: the fast path takes none).
locks_taken = 0


class WarehouseNotReady(RuntimeError):
    """The warehouse cannot be brought to head by the connection's role; the message says what a DBA must run."""


def script_directory() -> ScriptDirectory:
    """The migrations of ``include/migrations`` (alembic's view of them)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def _quote_ident(name: str) -> str:
    """``name`` as an SQL identifier: bare when it is a plain lower-case name, double-quoted otherwise."""
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def missing_privileges(conn: Any, analyst: str = ANALYST_ROLE) -> tuple[list[str], list[str]]:
    """What the connection's role lacks to run the migrations: ``(required, optional)`` DBA statements.

    ``conn`` is a psycopg connection or a SQLAlchemy one (anything with ``execute(sql)`` returning rows).
    Required: ``GRANT CREATE ON DATABASE`` when the role may not create schemas; ``CREATE ROLE analyst NOLOGIN``
    when the role does not exist and the connection's role may not create it. Optional: ``GRANT analyst TO
    <role>`` when the role is not a member and cannot make itself one (it lets the pipeline's role act as an
    analyst; the pipeline does not need it). ``analyst`` names the group role (tests pass one that is absent:
    roles are per cluster).
    """
    row = _fetchone(
        conn,
        "SELECT current_user, current_database(), has_database_privilege(current_database(), 'CREATE'),"
        " r.rolsuper, r.rolcreaterole,"
        f" EXISTS (SELECT FROM pg_roles WHERE rolname = {_quote_literal(analyst)}),"
        f" EXISTS (SELECT FROM pg_roles WHERE rolname = {_quote_literal(analyst)}"
        f"         AND pg_has_role(current_user, oid, 'MEMBER')),"
        f" EXISTS (SELECT FROM pg_roles WHERE rolname = {_quote_literal(analyst)}"
        f"         AND pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION')),"
        " current_setting('server_version_num')::int"
        " FROM pg_roles r WHERE r.rolname = current_user",
    )
    user, database, can_create, superuser, createrole, analyst_exists, member, admin, version = row
    role, db = _quote_ident(user), _quote_ident(database)
    required: list[str] = []
    optional: list[str] = []
    if not (can_create or superuser):
        required.append(f"GRANT CREATE ON DATABASE {db} TO {role};")
    if not analyst_exists and not (superuser or createrole):
        required.append(f"CREATE ROLE {_quote_ident(analyst)} NOLOGIN;")
    # Who may grant a role: a superuser, a holder of ADMIN OPTION, before PostgreSQL 16 any CREATEROLE role,
    # from 16 on the CREATEROLE role that created it (it holds ADMIN OPTION then).
    may_grant = superuser or admin or (createrole and (version < 160000 or not analyst_exists))
    if not member and not may_grant:
        optional.append(f"GRANT {_quote_ident(analyst)} TO {role};")
    return required, optional


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _fetchone(conn: Any, sql: str) -> Any:
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy
        return conn.exec_driver_sql(sql).fetchone()
    return conn.execute(sql).fetchone()


def _current_revision(conn: Any) -> str | None:
    """``ops.alembic_version`` as seen by ``conn`` (None: no table or no row, an empty warehouse)."""
    exists = _fetchone(conn, "SELECT to_regclass('ops.alembic_version') IS NOT NULL")[0]
    if not exists:
        return None
    row = _fetchone(conn, "SELECT version_num FROM ops.alembic_version")
    return row[0] if row else None


def _read_revision_fast(conn_id: str) -> str | None:
    """The fast path's one query (autocommit; a missing table reads as an empty warehouse)."""
    import psycopg

    from pulse.warehouse.db import connect

    try:
        conn = connect(conn_id, autocommit=True)
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc) and "database" in str(exc):
            raise WarehouseNotReady(_no_database_message(conn_id, exc)) from exc
        raise
    with conn:
        try:
            row = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return row[0] if row else None


def _no_database_message(conn_id: str, exc: Exception) -> str:
    import psycopg

    from pulse.warehouse.db import dsn_from_connection

    info = psycopg.conninfo.conninfo_to_dict(dsn_from_connection(conn_id))
    db, role = (
        _quote_ident(str(info.get("dbname", "warehouse"))),
        _quote_ident(str(info.get("user", "pulse"))),
    )
    return (
        f"the warehouse database of connection {conn_id!r} does not exist ({exc}). Ask a DBA to run:\n"
        f"    CREATE DATABASE {db} OWNER {role};"
    )


def ensure_warehouse(conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """Bring the warehouse of ``conn_id`` to the migrations' head; returns what it did.

    ``"at head 0014"`` (the fast path: one query, no lock), ``"at head 0014 (migrated by another task)"`` or
    ``"migrated base -> 0014"`` / ``"migrated 0012 -> 0014"``. Raises :class:`WarehouseNotReady` before
    changing anything when the role lacks a privilege (the message lists the DBA's statements) or when the
    warehouse is at a revision this code does not know (newer code ran against it).
    """
    script = script_directory()
    head = script.get_current_head()
    current = _read_revision_fast(conn_id)
    if current == head:
        return f"at head {head}"
    return _migrate_under_lock(conn_id, script, head)


def _migrate_under_lock(conn_id: str, script: ScriptDirectory, head: str | None) -> str:
    global locks_taken
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pulse.warehouse.db import connect

    engine = create_engine("postgresql+psycopg://", creator=lambda: connect(conn_id), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_KEY})")
            conn.commit()
            locks_taken += 1
            try:
                return _migrate(conn, script, head)
            finally:
                conn.rollback()  # a failed migration leaves its transaction open: end it to unlock
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
                conn.commit()
    finally:
        engine.dispose()


def _migrate(conn: Connection, script: ScriptDirectory, head: str | None) -> str:
    """Under the lock: read the version again, check privileges, upgrade on ``conn``."""
    from alembic import command

    current = _current_revision(conn)
    conn.commit()
    if current == head:
        return f"at head {head} (migrated by another task)"
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise WarehouseNotReady(
            f"the warehouse is at revision {current!r}, which these migrations (head {head}) do not know: "
            "newer code migrated it. Deploy that code again (or downgrade the warehouse with it)."
        )
    pending = list(reversed(list(script.iterate_revisions(head, current))))
    required, optional = missing_privileges(conn)
    conn.commit()
    if required:
        user, database = conn.exec_driver_sql("SELECT current_user, current_database()").fetchone()
        conn.commit()
        lines = [*required, *(f"{s}  -- optional: lets {user} act as an analyst" for s in optional)]
        raise WarehouseNotReady(
            f"role {user!r} cannot migrate database {database!r} from {current or 'base'} to {head}; nothing "
            "was changed. Ask a DBA to run (as a superuser, in that database):\n"
            + "\n".join(f"    {s}" for s in lines)
        )
    cfg = _alembic_config(conn)
    log.info("migrating the warehouse from %s to %s (%d migrations)", current or "base", head, len(pending))
    command.upgrade(cfg, head or "head")
    for rev in pending:
        log.info("applied migration %s: %s", rev.revision, (rev.doc or "").strip().splitlines()[0])
    _grant_analyst_membership(conn)
    return f"migrated {current or 'base'} -> {head}"


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn  # include/migrations/env.py runs on it (the alembic cookbook's way)
    return cfg


def _grant_analyst_membership(conn: Connection) -> None:
    """Make the pipeline's role a member of ``analyst`` when it may (as the local stack does); else log how."""
    from sqlalchemy.exc import DBAPIError

    _required, optional = missing_privileges(conn)
    conn.commit()
    member = conn.exec_driver_sql(
        f"SELECT pg_has_role(current_user, '{ANALYST_ROLE}', 'MEMBER'), current_user"
    ).fetchone()
    conn.commit()
    if member[0]:
        return
    if optional:
        log.warning(
            "role %s is not a member of %s (not needed by the pipeline; to act as an analyst, a DBA runs: %s)",
            member[1],
            ANALYST_ROLE,
            " ".join(optional),
        )
        return
    try:
        conn.exec_driver_sql(f"GRANT {ANALYST_ROLE} TO {_quote_ident(member[1])}")
        conn.commit()
        log.info("granted %s to %s", ANALYST_ROLE, member[1])
    except DBAPIError as exc:
        conn.rollback()
        log.warning("could not grant %s to %s: %s", ANALYST_ROLE, member[1], exc)

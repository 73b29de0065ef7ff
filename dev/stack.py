"""The local stack: PostgreSQL, the source simulator, a Slack receiver and Airflow 3.3, all on loopback.

Started and stopped by this script only (``make run``, ``make stop``, ``make psql``); every piece of state
lives in the project's state folder (``.local/`` unless ``PULSE_STATE_DIR`` says otherwise), so deleting that
folder resets everything. Ports come from the environment:

======================  =======  ============================================
variable                default  what listens there
======================  =======  ============================================
``PULSE_PG_PORT``       55432    PostgreSQL 15 (warehouse + airflow databases)
``PULSE_API_PORT``      8080     Airflow api-server (UI and REST)
``PULSE_SIM_PORT``      8765     source simulator
``PULSE_SLACK_PORT``    8766     Slack webhook receiver
``PULSE_WEBHOOK_PORT``  8767     export webhook subscriber (checks signatures)
``PULSE_S3_PORT``       8768     S3 API (moto server): archives and exports
``PULSE_REDIS_PORT``    56379    Redis, the Celery broker (celery only)
``PULSE_FLOWER_PORT``   8769     Flower, the Celery monitor (celery only)
``PULSE_WORKER_LOG_PORT`` 8793   worker i's log server port: base + i - 1
======================  =======  ============================================

``PULSE_EXECUTOR`` picks Airflow's executor: ``local`` (default: the scheduler runs the tasks) or ``celery``
(Redis as the broker, ``PULSE_CELERY_WORKERS`` Celery workers, default 2, ``worker-1`` ..., each serving every
queue of :mod:`pulse.queues`, and Flower). ``PULSE_AIRFLOW_ENV`` is a JSON object of extra ``AIRFLOW__*``
settings merged last into every Airflow process's environment (the tests shorten timeouts through it).
Archives and exports go to the S3 API of the ``s3`` service (buckets ``pulse-archive`` and ``pulse-exports``,
connection ``pulse_object_storage``) on every executor: with more than one worker no task may write a local
folder another task reads. The moto server keeps objects in memory: ``down`` saves them to ``<state>/s3/``
and ``up`` puts them back. docs/executors.md tells the whole story.

``down`` (``make stop``) ends a running ``make run`` of the same state folder too, stops every service with
everything it started (each runs in its own session; see :func:`stop_services`) and PostgreSQL, and says
per service whether it stopped, was already stopped or had to be killed.

PostgreSQL refuses to run as root. When this script runs as root it runs the server as the ``postgres``
user; that user must be able to enter every folder above the data directory, which a checkout under a
private folder such as ``/root`` does not allow, so the data directory then falls back to
``/tmp/pulse-pg-<hash of the state folder path>`` (the script says so when it happens).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("PULSE_STATE_DIR", ROOT / ".local")).resolve()
PG_BIN = Path(os.environ.get("PULSE_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


PG_PORT = _port("PULSE_PG_PORT", 55432)
API_PORT = _port("PULSE_API_PORT", 8080)
SIM_PORT = _port("PULSE_SIM_PORT", 8765)
SLACK_PORT = _port("PULSE_SLACK_PORT", 8766)
WEBHOOK_PORT = _port("PULSE_WEBHOOK_PORT", 8767)
S3_PORT = _port("PULSE_S3_PORT", 8768)
REDIS_PORT = _port("PULSE_REDIS_PORT", 56379)
FLOWER_PORT = _port("PULSE_FLOWER_PORT", 8769)
WORKER_LOG_PORT = _port("PULSE_WORKER_LOG_PORT", 8793)
#: ``local`` (LocalExecutor) or ``celery`` (CeleryExecutor with Redis and ``CELERY_WORKERS`` workers).
EXECUTOR = os.environ.get("PULSE_EXECUTOR", "").strip().lower() or "local"
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
CELERY_WORKERS = int(os.environ.get("PULSE_CELERY_WORKERS", "2"))
REDIS_BIN = Path(os.environ.get("PULSE_REDIS_BIN", "/usr/bin/redis-server"))
#: The aws connection of the local S3 API, and its buckets (``down`` saves their objects, ``up`` restores).
S3_CONN_ID = "pulse_object_storage"
ARCHIVE_BUCKET = "pulse-archive"
EXPORT_BUCKET = "pulse-exports"
#: Another DAG folder for the Airflow processes (the live alert tests load probe DAGs this way).
DAGS_FOLDER = Path(os.environ.get("PULSE_DAGS_FOLDER", ROOT / "dags"))

PG_SUPERUSER = "postgres"
WAREHOUSE_DB = "warehouse"
WAREHOUSE_ROLE = "pulse_loader"
ANALYST_ROLE = "analyst"
AIRFLOW_DB = "airflow"
AIRFLOW_ROLE = "airflow"


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------
# secrets: generated once per state folder, never committed
# --------------------------------------------------------------------------------------------------


def load_secrets() -> dict[str, str]:
    """Return the stack's generated secrets, creating them on first use (file mode 0600)."""
    path = STATE / "secrets.json"
    # Added after the first release of the file: state folders from before get them on first use.
    later = {
        "webhook_secret": lambda: secrets.token_urlsafe(32),
        "redis_password": lambda: secrets.token_urlsafe(24),
        "flower_password": lambda: secrets.token_urlsafe(12),
        "s3_secret_key": lambda: secrets.token_urlsafe(24),
    }
    if path.exists():
        values = json.loads(path.read_text())
        missing = [key for key in later if key not in values]
        if missing:
            values.update({key: later[key]() for key in missing})
            path.write_text(json.dumps(values, indent=2))
        return values
    STATE.mkdir(parents=True, exist_ok=True)
    values = {
        **{key: make() for key, make in later.items()},
        "pg_superuser_password": secrets.token_urlsafe(18),
        "warehouse_password": secrets.token_urlsafe(18),
        "airflow_db_password": secrets.token_urlsafe(18),
        "airflow_admin_password": secrets.token_urlsafe(12),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "pseudonym_key": secrets.token_hex(32),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------


def _as_root() -> bool:
    return os.geteuid() == 0


def _pg_user() -> str:
    return "postgres" if _as_root() else pwd.getpwuid(os.getuid()).pw_name


def _run_pg(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL binary, as the ``postgres`` user when we are root."""
    if _as_root():
        kw.setdefault("user", "postgres")
        kw.setdefault("group", "postgres")
        kw.setdefault("cwd", "/")
    return subprocess.run(args, text=True, capture_output=True, **kw)


def _can_enter(user: str, path: Path) -> bool:
    """True when ``user`` may traverse every folder down to ``path``."""
    if not _as_root():
        return True
    probe = subprocess.run(
        ["test", "-x", str(path)], user=user, group=user, cwd="/", capture_output=True, check=False
    )
    return probe.returncode == 0


def pg_data_dir() -> Path:
    """The data directory: inside the state folder when the server's user can reach it, else in /tmp."""
    preferred = STATE / "pg" / "data"
    STATE.mkdir(parents=True, exist_ok=True)
    if _can_enter(_pg_user(), STATE):
        return preferred
    digest = hashlib.sha256(str(STATE).encode()).hexdigest()[:10]
    return Path(f"/tmp/pulse-pg-{digest}") / "data"


def _pg_ready() -> bool:
    res = subprocess.run(
        [str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(PG_PORT), "-q"], capture_output=True, check=False
    )
    return res.returncode == 0


def pg_up() -> None:
    """Initialise (first time) and start PostgreSQL, then make sure roles and databases exist."""
    sec = load_secrets()
    data = pg_data_dir()
    if data.parent != STATE / "pg":
        log(
            f"the postgres user cannot enter {STATE}; using the data directory {data} instead "
            "(PostgreSQL refuses to run as root)"
        )
    if not (data / "PG_VERSION").exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        if _as_root():
            shutil.chown(data.parent, "postgres", "postgres")
        pwfile = data.parent / "pwfile"
        pwfile.write_text(sec["pg_superuser_password"] + "\n")
        if _as_root():
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        res = _run_pg(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        pwfile.unlink()
        if res.returncode != 0:
            raise SystemExit(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        log(f"initialised PostgreSQL in {data}")
    conf = data / "pulse.conf"
    conf.write_text(
        "\n".join(
            [
                f"listen_addresses = '{HOST}'",
                f"port = {PG_PORT}",
                f"unix_socket_directories = '{data}'",
                "unix_socket_permissions = 0700",
                "max_connections = 100",
                "shared_buffers = 256MB",
                "max_wal_size = 2GB",
                "logging_collector = on",
                "log_directory = 'log'",
                "log_min_duration_statement = 5000",
                "timezone = 'UTC'",
                "",
            ]
        )
    )
    main_conf = data / "postgresql.conf"
    if "include_if_exists = 'pulse.conf'" not in main_conf.read_text():
        with main_conf.open("a") as fh:
            fh.write("\ninclude_if_exists = 'pulse.conf'\n")
    if _as_root():
        shutil.chown(conf, "postgres", "postgres")
    if not _pg_ready():
        res = _run_pg(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "start"],
            env={**os.environ, MEMBER_VAR: str(STATE)},
        )
        if res.returncode != 0:
            tail = (data / "server.log").read_text()[-2000:] if (data / "server.log").exists() else ""
            raise SystemExit(f"PostgreSQL did not start on port {PG_PORT}:\n{res.stdout}{res.stderr}\n{tail}")
        log(f"PostgreSQL listening on {HOST}:{PG_PORT}")
    _ensure_databases(sec)


def _admin_sql(sql: str, db: str = "postgres") -> str:
    import psycopg

    sec = load_secrets()
    with psycopg.connect(
        host=HOST,
        port=PG_PORT,
        user=PG_SUPERUSER,
        password=sec["pg_superuser_password"],
        dbname=db,
        autocommit=True,
    ) as conn:
        cur = conn.execute(sql)
        return str(cur.fetchone()[0]) if cur.description else ""


def _ensure_databases(sec: dict[str, str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=HOST,
        port=PG_PORT,
        user=PG_SUPERUSER,
        password=sec["pg_superuser_password"],
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for role, pw_key in ((WAREHOUSE_ROLE, "warehouse_password"), (AIRFLOW_ROLE, "airflow_db_password")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(sec[pw_key])
                )
            )
        # The analysts' read-only group role; the warehouse migrations grant it its rights.
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANALYST_ROLE,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ANALYST_ROLE)))
            conn.execute(
                sql.SQL(
                    "COMMENT ON ROLE {} IS 'Pulse analysts: read-only on analytics and published (audited rows of core and enriched).'"
                ).format(sql.Identifier(ANALYST_ROLE))
            )
        # Lets the pipeline's role act as an analyst (make psql ROLE=analyst; the role tests).
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(ANALYST_ROLE), sql.Identifier(WAREHOUSE_ROLE))
        )
        for db, owner in ((WAREHOUSE_DB, WAREHOUSE_ROLE), (AIRFLOW_DB, AIRFLOW_ROLE)):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner))
                )


def pg_down() -> str:
    """Stop PostgreSQL (fast shutdown: open sessions are ended); logs and returns what happened."""
    data = pg_data_dir()
    if not (data / "postmaster.pid").exists():
        outcome = "already stopped"
    else:
        t0 = time.monotonic()
        res = _run_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"])
        if res.returncode == 0:
            outcome = f"stopped (after {time.monotonic() - t0:.1f} s)"
        elif "Is server running?" in res.stderr:
            outcome = "already stopped (removed a stale postmaster.pid)"
        else:
            outcome = f"did not stop: {res.stderr.strip() or res.stdout.strip()}"
    log(f"{'postgres':14} {outcome}")
    return outcome


def warehouse_dsn(sec: dict[str, str] | None = None) -> dict[str, Any]:
    sec = sec or load_secrets()
    return {
        "host": HOST,
        "port": PG_PORT,
        "user": WAREHOUSE_ROLE,
        "password": sec["warehouse_password"],
        "dbname": WAREHOUSE_DB,
    }


# --------------------------------------------------------------------------------------------------
# environment shared by every Airflow component and every CLI call
# --------------------------------------------------------------------------------------------------


def source_connections(sim_url: str, extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each source's connection pointed at the simulator: its spec's conn id and type, the simulator's
    credentials (``SourceSpec.local_conn``), ``extra`` merged into the spec's extras (the tests' fast retries).
    """
    if str(ROOT / "plugins") not in sys.path:  # `python -m dev.stack` without the project installed
        sys.path.append(str(ROOT / "plugins"))
    from pulse.sources.spec import all_sources

    out = {}
    for spec in all_sources():
        conn = {"conn_type": spec.conn_type, "host": sim_url, **spec.local_conn}
        if spec.local_conn.get("extra") or extra:
            conn["extra"] = {**spec.local_conn.get("extra", {}), **(extra or {})}
        out[spec.default_conn_id] = conn
    return out


def connections(sec: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The connections of the local stack. airflow_settings.yaml declares the same ids for Astro users."""
    sim = f"http://{HOST}:{SIM_PORT}"
    slack = f"http://{HOST}:{SLACK_PORT}"
    return {
        "warehouse_default": {
            "conn_type": "postgres",
            "host": HOST,
            "port": PG_PORT,
            "login": WAREHOUSE_ROLE,
            "password": sec["warehouse_password"],
            "schema": WAREHOUSE_DB,
        },
        **source_connections(sim),
        # One webhook per alert route (pulse.alerts.ROUTES); the receiver records the path, so the channel shows.
        "slack_failures": {"conn_type": "slackwebhook", "host": slack, "password": "T000/B000/FAILURES"},
        "slack_quality": {"conn_type": "slackwebhook", "host": slack, "password": "T000/B000/QUALITY"},
        "slack_trends": {"conn_type": "slackwebhook", "host": slack, "password": "T000/B000/TRENDS"},
        "pulse_pseudonym": {"conn_type": "generic", "password": sec["pseudonym_key"]},
        # Archives and exports: the local S3 API (the s3 service, a moto server).
        S3_CONN_ID: {
            "conn_type": "aws",
            "login": "pulse",
            "password": sec["s3_secret_key"],
            "extra": {"endpoint_url": f"http://{HOST}:{S3_PORT}", "region_name": "us-east-1"},
        },
        # The export DAG's one local subscriber (include/exports/subscribers.yaml): URL + HMAC secret.
        "webhook_local": {
            "conn_type": "http",
            "host": f"http://{HOST}:{WEBHOOK_PORT}/hooks/pulse",
            "password": sec["webhook_secret"],
        },
    }


def airflow_env(sec: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Airflow processes of the local stack (configuration only by environment)."""
    sec = sec or load_secrets()
    home = STATE / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    pwfile = home / "simple_auth_manager_passwords.json"
    pwfile.write_text(json.dumps({"admin": sec["airflow_admin_password"]}))
    pwfile.chmod(0o600)
    api = f"http://{HOST}:{API_PORT}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor()],
        # Tasks at once in the whole stack: the LocalExecutor's worker processes, or what the workers take.
        "AIRFLOW__CORE__PARALLELISM": str(
            4 if EXECUTOR == "local" else CELERY_WORKERS * _worker_concurrency()
        ),
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pwfile),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
        # The UI's Test button on the connection form (Pulse's pulse_* types test against the simulator).
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://{AIRFLOW_ROLE}:{sec['airflow_db_password']}@{HOST}:{PG_PORT}/{AIRFLOW_DB}"
        ),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(API_PORT),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # A task's calls to the api-server (execution API; default 5 s, 5 retries): on a loaded two-core
        # machine running the whole stack, and several task processes at once with Celery, the one api-server
        # worker answered later than that and tasks failed on a timeout.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",
        "PULSE_PSEUDONYM_KEY": sec["pseudonym_key"],
        "PULSE_STATE_DIR": str(STATE),
        **storage_env(),
        "NO_PROXY": "*",
    }
    if EXECUTOR == "celery":
        env.update(celery_env(sec))
    for conn_id, conn in connections(sec).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    env.update(extra_airflow_env())
    return env


def executor() -> str:
    """``PULSE_EXECUTOR``, checked: ``local`` or ``celery``."""
    if EXECUTOR not in EXECUTORS:
        raise SystemExit(f"PULSE_EXECUTOR={EXECUTOR!r}: use one of {', '.join(EXECUTORS)}")
    if EXECUTOR == "celery" and CELERY_WORKERS < 1:
        raise SystemExit(f"PULSE_CELERY_WORKERS={CELERY_WORKERS}: at least 1")
    return EXECUTOR


def extra_airflow_env() -> dict[str, str]:
    """``PULSE_AIRFLOW_ENV``: a JSON object of ``AIRFLOW__*`` settings merged last into :func:`airflow_env`."""
    raw = os.environ.get("PULSE_AIRFLOW_ENV", "").strip()
    if not raw:
        return {}
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"PULSE_AIRFLOW_ENV is not JSON: {exc}") from exc
    if not isinstance(values, dict) or not all(str(k).startswith("AIRFLOW__") for k in values):
        raise SystemExit(
            'PULSE_AIRFLOW_ENV must be a JSON object of AIRFLOW__* settings, e.g. {"AIRFLOW__X__Y": "1"}'
        )
    return {str(k): str(v) for k, v in values.items()}


def storage_env() -> dict[str, str]:
    """Where archives and exports go: the ``s3`` service's buckets through the ``pulse_object_storage``
    connection, on every executor (with Celery a task's local folder is on one worker only: pulse.storage
    refuses ``file://`` there). ``PULSE_ARCHIVE_URL`` / ``PULSE_EXPORT_URL`` (and ``*_CONN_ID``) set in the
    environment win (a ``file://`` URL then goes without a connection)."""
    env = {}
    for kind, bucket in (("ARCHIVE", ARCHIVE_BUCKET), ("EXPORT", EXPORT_BUCKET)):
        url = os.environ.get(f"PULSE_{kind}_URL", "").strip() or f"s3://{bucket}"
        env[f"PULSE_{kind}_URL"] = url
        conn_id = os.environ.get(f"PULSE_{kind}_CONN_ID", "").strip()
        if conn_id or url.startswith("s3://"):
            env[f"PULSE_{kind}_CONN_ID"] = conn_id or S3_CONN_ID
    return env


def _worker_concurrency() -> int:
    return _queues().LOCAL_WORKER_CONCURRENCY


def _queues() -> Any:
    if str(ROOT / "plugins") not in sys.path:  # `python -m dev.stack` without the project installed
        sys.path.append(str(ROOT / "plugins"))
    from pulse import queues

    return queues


def redis_url(sec: dict[str, str]) -> str:
    return f"redis://:{sec['redis_password']}@{HOST}:{REDIS_PORT}/0"


def celery_env(sec: dict[str, str]) -> dict[str, str]:
    """The settings every Airflow process of a Celery stack shares (AIRFLOW3.md §6): broker, result
    backend (the Airflow database), the broker's visibility timeout, acknowledgement after the task."""
    db = f"{AIRFLOW_ROLE}:{sec['airflow_db_password']}@{HOST}:{PG_PORT}/{AIRFLOW_DB}"
    return {
        "AIRFLOW__CELERY__BROKER_URL": redis_url(sec),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{db}",
        # Redis hands a message nobody acknowledged to another worker after this long. With task_acks_late a
        # message is acknowledged when its task ends, so it must outlast the longest task (execution_timeout
        # 45 min in pulse.dag_defaults) or a long task would start twice (Airflow refuses the second start).
        # A task whose worker died is found by its missing heartbeat long before, and retried.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        # The provider's defaults, spelt out: acknowledge when the task ended; take one message at a time.
        "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(_worker_concurrency()),
        "AIRFLOW__CELERY__FLOWER_HOST": HOST,
        "AIRFLOW__CELERY__FLOWER_PORT": str(FLOWER_PORT),
        "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": f"admin:{sec['flower_password']}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": _queues().DEFAULT,
    }


def settings_objects() -> dict[str, Any]:
    """Pools and variables declared in airflow_settings.yaml (the single source for both stacks)."""
    import yaml

    data = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    return {
        "connections": data.get("connections") or [],
        "pools": data.get("pools") or [],
        "variables": data.get("variables") or [],
    }


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int | None = None
    airflow: bool = False
    #: Merged over the stack's environment for this service only (a worker's log server port).
    env: dict[str, str] = field(default_factory=dict)
    #: Run as this user when the stack runs as root (Redis, like PostgreSQL, as an unprivileged user).
    user: str | None = None
    #: Makes what is written to its standard input, which is then closed (Redis reads its configuration
    #: there: no file holds the password).
    stdin: Callable[[], str] | None = None


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def services() -> list[Service]:
    py = sys.executable
    return [
        Service("simulator", [py, "-m", "dev.simulator", "--host", HOST, "--port", str(SIM_PORT)], SIM_PORT),
        Service(
            "slack",
            [
                py,
                "-m",
                "dev.slack_receiver",
                "--host",
                HOST,
                "--port",
                str(SLACK_PORT),
                "--record",
                str(STATE / "slack" / "messages.jsonl"),
            ],
            SLACK_PORT,
        ),
        Service(
            "webhook",
            [
                py,
                "-m",
                "dev.webhook_receiver",
                "--host",
                HOST,
                "--port",
                str(WEBHOOK_PORT),
                "--secret-env",
                "PULSE_WEBHOOK_SECRET",
                "--out",
                str(STATE / "webhooks" / "deliveries.jsonl"),
            ],
            WEBHOOK_PORT,
        ),
        s3_service(),
        *([redis_service()] if EXECUTOR == "celery" else []),
        Service(
            "api-server",
            [_venv_bin("airflow"), "api-server", "--host", HOST, "--port", str(API_PORT), "--workers", "1"],
            API_PORT,
            airflow=True,
        ),
        Service("scheduler", [_venv_bin("airflow"), "scheduler", "--skip-serve-logs"], airflow=True),
        Service("dag-processor", [_venv_bin("airflow"), "dag-processor"], airflow=True),
        Service("triggerer", [_venv_bin("airflow"), "triggerer", "--skip-serve-logs"], airflow=True),
        *(celery_services() if EXECUTOR == "celery" else []),
    ]


#: The services :func:`up` starts before Airflow, in this order (the receivers, object storage, the broker).
SUPPORT = ("simulator", "slack", "webhook", "s3", "redis")


def s3_service() -> Service:
    """The local S3 API (a moto server, objects in memory: ``down`` saves them, ``up`` restores them)."""
    return Service("s3", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(S3_PORT)], S3_PORT)


def redis_service() -> Service:
    """Redis, the Celery broker: loopback only, protected mode, a password, no persistence (Airflow queues a
    task again whose message was lost: ``[scheduler] task_queued_timeout``), as the ``redis`` user (else
    ``nobody``) when we are root."""
    user = None
    if _as_root():
        user = "redis" if _user_exists("redis") else "nobody"

    def config() -> str:
        return "\n".join(
            [
                f"bind {HOST}",
                f"port {REDIS_PORT}",
                "protected-mode yes",
                f"requirepass {load_secrets()['redis_password']}",
                'save ""',
                "appendonly no",
                "dir /tmp",
                'logfile ""',
                "daemonize no",
                "",
            ]
        )

    return Service("redis", [str(REDIS_BIN), "-"], REDIS_PORT, user=user, stdin=config)


def worker_name(i: int) -> str:
    return f"worker-{i}"


def celery_services() -> list[Service]:
    """``CELERY_WORKERS`` Celery workers, each serving every queue (pulse.queues.LOCAL_WORKER_QUEUES: any one
    may die), and Flower.

    Every worker runs with ``--skip-serve-logs``: Airflow's log server listens on every interface (uvicorn
    ``host=""``, not configurable in 3.3), and the stack listens on loopback only. Nothing is lost: the
    workers write task logs into the shared ``$AIRFLOW_HOME/logs``, which the api-server reads directly
    (``FileTaskHandler`` reads the local file first; it would ask ``http://<TI hostname>:<its own
    worker_log_server_port>``, one port for all workers, only for a file it does not have). Each worker still
    gets its own ``worker_log_server_port`` (``PULSE_WORKER_LOG_PORT`` + i - 1), so turning serving on
    never makes two of them collide."""
    queues = _queues()
    airflow = _venv_bin("airflow")
    workers = [
        Service(
            worker_name(i),
            [
                airflow,
                "celery",
                "worker",
                "--queues",
                ",".join(queues.LOCAL_WORKER_QUEUES),
                "--concurrency",
                str(queues.LOCAL_WORKER_CONCURRENCY),
                "--celery-hostname",
                f"{worker_name(i)}@%h",
                "--skip-serve-logs",
            ],
            airflow=True,
            env={
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(WORKER_LOG_PORT + i - 1),
                # The task instances' hostname names the worker that ran them (see worker_hostname).
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dev.stack.worker_hostname",
                "PULSE_WORKER_NAME": worker_name(i),
            },
        )
        for i in range(1, CELERY_WORKERS + 1)
    ]
    flower = Service("flower", [airflow, "celery", "flower"], FLOWER_PORT, airflow=True)
    return [*workers, flower]


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the local workers: the Celery worker's name, ``worker-1@<host>``, as
    ``airflow celery list-workers`` and Flower show it. Every worker runs on this one machine, so the plain
    host name would not tell which one ran a task; the UI and ``make run`` show this as the task's host. (The
    api-server asks a task's host for its log only when the shared log folder lacks it: never here.)"""
    return f"{os.environ.get('PULSE_WORKER_NAME', 'worker')}@{socket.getfqdn()}"


def celery_workers(timeout: float = 10.0) -> dict[str, list[str]]:
    """The Celery workers Flower sees now and the queues each consumes, ``{"worker-1@host": [queues]}``."""
    import requests

    sec = load_secrets()
    resp = requests.get(
        f"http://{HOST}:{FLOWER_PORT}/api/workers",
        params={"refresh": "true"},
        auth=("admin", sec["flower_password"]),
        timeout=timeout,
    )
    resp.raise_for_status()
    return {
        name: sorted(q["name"] for q in info.get("active_queues") or [])
        for name, info in sorted(resp.json().items())
    }


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


#: Set in the environment of every process the stack starts (and so of everything they start), with the state
#: folder as its value: ``down`` finds leftovers by it. Not part of ``airflow_env``, so the shell exports of
#: ``python -m dev.stack env`` do not mark a user's own processes.
MEMBER_VAR = "PULSE_STACK_MEMBER"
#: The pid file of a running ``make run`` (``dev.run_cycle``): ``down`` ends it too.
RUNNER = "make-run"


def _pidfile(name: str) -> Path:
    return STATE / "run" / f"{name}.pid"


def _read_pid(path: Path) -> int | None:
    """The pid a pid file records, if that process still exists (running or a zombie).

    A pid file holds ``<pid> <start time>`` (``/proc/<pid>/stat`` field 22): a pid the kernel gave to
    another program since is not ours. (Not the environment: programs that set their process title, such as
    the api-server, overwrite what ``/proc/<pid>/environ`` shows.)
    """
    try:
        pid_text, _, started = path.read_text().strip().partition(" ")
    except OSError:
        return None
    if not pid_text.isdigit() or int(pid_text) <= 0:
        return None
    pid = int(pid_text)
    fields = _stat(pid)
    if fields is None or (started and fields[19] != started):
        return None
    return pid


def _write_pid(path: Path, pid: int) -> None:
    fields = _stat(pid)
    path.write_text(f"{pid} {fields[19]}" if fields else str(pid))


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from the state on (state, ppid, pgrp, session, ...); None when
    there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields start after its last ')'.
    return raw[raw.rindex(b")") + 2 :].decode(errors="replace").split()


def process_state(pid: int) -> str | None:
    """The kernel's state letter of ``pid`` (``R``, ``S``, ``D``, ``Z`` zombie ...), None when it is gone."""
    fields = _stat(pid)
    return fields[0] if fields else None


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and has not exited: a zombie (exited, not reaped by its parent yet: a
    service that ``make stop`` stopped is one until ``make run``, its parent, reaps it) counts as stopped."""
    state = process_state(pid)
    if state is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc: the signal probe cannot tell a zombie
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X", "x")


def _alive(pid: int) -> bool:
    """:func:`is_running`, reaping ``pid`` first when it is our own child that has exited."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return is_running(pid)


def reap_children() -> None:
    """Collect every exited child of this process, so none stays a zombie."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def running_pid(name: str) -> int | None:
    pid = _read_pid(_pidfile(name))
    return pid if pid and _alive(pid) else None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def start_service(svc: Service, env: dict[str, str]) -> None:
    if running_pid(svc.name):
        log(f"{svc.name} already running")
        return
    if svc.port and _port_open(svc.port):
        raise SystemExit(
            f"port {svc.port} for {svc.name} is taken by another program; choose another with the "
            "PULSE_*_PORT variables (see README)"
        )
    (STATE / "run").mkdir(parents=True, exist_ok=True)
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    logfile = (STATE / "logs" / f"{svc.name}.log").open("ab")
    as_user: dict[str, Any] = {}
    if svc.user and _as_root():
        as_user = {"user": svc.user, "group": pwd.getpwnam(svc.user).pw_gid, "extra_groups": []}
    # Its own session: Ctrl-C in the terminal of make run reaches make run only, which then stops the stack
    # in order; and everything the service starts stays in that session, where ``down`` finds it.
    proc = subprocess.Popen(
        svc.argv,
        cwd="/" if as_user else ROOT,
        env={**env, **svc.env, MEMBER_VAR: str(STATE)},
        stdin=subprocess.PIPE if svc.stdin is not None else subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **as_user,
    )
    logfile.close()
    if svc.stdin is not None and proc.stdin:
        proc.stdin.write(svc.stdin().encode())
        proc.stdin.close()
    _write_pid(_pidfile(svc.name), proc.pid)
    log(f"started {svc.name} (pid {proc.pid}, log {STATE / 'logs' / svc.name}.log)")


def _processes() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _ancestors() -> set[int]:
    """This process and its ancestors: never signalled by ``down`` (make stop, make, the shell)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        fields = _stat(pid)
        pid = int(fields[1]) if fields else 0
    return pids


def stack_processes(sessions: Iterable[int] = (), *, marked: bool = False) -> dict[int, str]:
    """Running processes of this stack, ``pid -> command line``: those in the sessions of ``sessions``
    (the services' pids: a service's children stay in its session even when they make their own process
    group, as Airflow's task supervisors do), with ``marked`` those whose environment carries this state
    folder's :data:`MEMBER_VAR` (PostgreSQL; a service started while its pid file was not written yet), and
    every descendant of those (PostgreSQL's backends make their own sessions and overwrite their
    environment)."""
    wanted = set(sessions)
    mine = _ancestors()
    table = {
        pid: fields for pid in _processes() if (fields := _stat(pid)) and fields[0] not in ("Z", "X", "x")
    }
    found = {
        pid
        for pid, fields in table.items()
        if int(fields[3]) in wanted or (marked and _environ(pid).get(MEMBER_VAR) == str(STATE))
    }
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid: _cmdline(pid) for pid in sorted(found - mine)}


def _pgroup(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if fields else None


def _signal(pid: int, sig: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, sig)


def _end_processes(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM ``pids``, SIGKILL those still running after ``grace`` s; returns those killed."""
    pids = [pid for pid in pids if is_running(pid)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    killed = [pid for pid in pids if _alive(pid)]
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    return killed


def _count(pids: dict[int, str]) -> str:
    return f"{len(pids)} process" + ("" if len(pids) == 1 else "es")


def _describe(pids: dict[int, str]) -> str:
    return ", ".join(f"{pid} ({cmd[:60]})" for pid, cmd in sorted(pids.items()))


#: How long ``down`` lets a service stop on SIGTERM before SIGKILL (the api-server and the triggerer take
#: 5-15 s on a loaded two-core machine).
STOP_GRACE = float(os.environ.get("PULSE_STOP_GRACE", "30"))
#: How long ``down`` lets the scheduler wait for running tasks: on SIGTERM it waits for them to finish, and a
#: task only calls its operator's ``on_kill`` on SIGTERM and goes on (Airflow 3.3 task runner), so after this
#: the task processes get SIGTERM themselves and SIGKILL 5 s later; Airflow then marks them failed.
TASK_PATIENCE = 10.0


def stop_services(names: list[str], grace: float = STOP_GRACE) -> dict[str, str]:
    """Stop the named services and everything they started; returns ``name -> outcome`` and logs one line
    per service: ``stopped (pid N, after X s)``, ``already stopped`` or ``killed after N s``.

    SIGTERM goes to every named service's process group at once. Processes of a service's session in
    process groups of their own (the task processes of Airflow's task supervisors) that still run
    :data:`TASK_PATIENCE` seconds later get SIGTERM, and SIGKILL 5 s later: the scheduler waits for them.
    A service whose main process has not exited ``grace`` seconds after the first SIGTERM gets SIGKILL, with
    its whole session. Then whatever is left of the services' sessions gets SIGTERM, and SIGKILL 5 s later.
    An exited process that its parent has not reaped yet (a zombie: ``make run`` is the parent of the
    services it started) has stopped.
    """
    t0 = time.monotonic()
    leaders: dict[str, int] = {}
    outcome: dict[str, str] = {}
    for name in names:
        pid = _read_pid(_pidfile(name))
        if pid is None:
            outcome[name] = "already stopped"
        elif not _alive(pid):  # exited before (a zombie until its parent reaps it)
            outcome[name] = "already stopped (it had exited)"
            leaders[name] = pid  # its session may still hold children
        else:
            leaders[name] = pid
            _signal(pid, signal.SIGTERM, group=True)
    waiting = {name: pid for name, pid in leaders.items() if name not in outcome}
    notes: dict[str, str] = {}
    deadline = t0 + grace
    patient = True
    while waiting and time.monotonic() < deadline:
        for name, pid in list(waiting.items()):
            if not _alive(pid):
                outcome[name] = (
                    f"stopped (pid {pid}, after {time.monotonic() - t0:.1f} s{notes.get(name, '')})"
                )
                del waiting[name]
        if patient and waiting and time.monotonic() - t0 > TASK_PATIENCE:
            patient = False
            for name, pid in waiting.items():
                tasks = {p: cmd for p, cmd in stack_processes([pid]).items() if _pgroup(p) not in (pid, None)}
                if tasks:
                    killed = _end_processes(tasks, 5.0)
                    notes[name] = (
                        f"; ended {_count(tasks)} it waited for, in process groups of their own (running "
                        f"tasks): {_describe(tasks)}" + (f", {len(killed)} with SIGKILL" if killed else "")
                    )
        time.sleep(0.2)
    for name, pid in waiting.items():
        for member in stack_processes([pid]):
            _signal(member, signal.SIGKILL)
        _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        outcome[name] = f"killed after {grace:.0f} s (pid {pid} did not stop on SIGTERM{notes.get(name, '')})"
    for name in names:
        log(f"{name:14} {outcome[name]}")
    for name, pid in leaders.items():
        left = stack_processes([pid])
        if left:
            killed = _end_processes(left, 5.0)
            log(
                f"{name:14} ended {_count(left)} left in its session: {_describe(left)}"
                + (f"; killed {killed} after 5 s" if killed else "")
            )
    for name in names:
        _pidfile(name).unlink(missing_ok=True)
    return outcome


def wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(1)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s ({last}); see {STATE / 'logs'}")


def _dsn_uri() -> str:
    dsn = warehouse_dsn()
    return f"postgresql://{dsn['user']}:{dsn['password']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"


def migrate_warehouse() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    env["PULSE_WAREHOUSE_DSN"] = _dsn_uri()
    res = subprocess.run(
        [sys.executable, "-m", "pulse.warehouse.migrate", "upgrade"], cwd=ROOT, env=env, check=False
    )
    if res.returncode != 0:
        raise SystemExit("warehouse migrations failed")


def airflow_bootstrap(env: dict[str, str]) -> None:
    """Migrate Airflow's metadata database and apply pools and variables from airflow_settings.yaml."""
    log("migrating the Airflow metadata database (about 20 s)")
    res = subprocess.run([_venv_bin("airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    res = subprocess.run(
        [sys.executable, "-m", "dev.bootstrap_airflow"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise SystemExit(f"applying pools and variables failed:\n{res.stdout}\n{res.stderr}")
    log(res.stdout.strip())


def up() -> dict[str, str]:
    sec = load_secrets()
    check_executor()
    pg_up()  # roles and databases (the stack plays the DBA); Airflow migrates: every DAG's warehouse_ready
    env = airflow_env(sec)
    (STATE / "slack").mkdir(parents=True, exist_ok=True)
    (STATE / "webhooks").mkdir(parents=True, exist_ok=True)
    for svc in services():
        if svc.name in SUPPORT:
            start_service(
                svc, {**env, "PULSE_WEBHOOK_SECRET": sec["webhook_secret"]} if svc.name == "webhook" else env
            )
    wait_http(f"http://{HOST}:{SIM_PORT}/_sim/health", 30, "the simulator")
    wait_http(f"http://{HOST}:{SLACK_PORT}/_messages", 30, "the Slack receiver")
    wait_http(f"http://{HOST}:{WEBHOOK_PORT}/_deliveries", 30, "the webhook receiver")
    wait_http(f"http://{HOST}:{S3_PORT}/", 60, "the S3 API (moto)")
    s3_restore(sec)
    if EXECUTOR == "celery":
        wait_redis(sec, 30)
    if not running_pid("api-server"):
        airflow_bootstrap(env)
    # The api-server first: tasks queued before it answers fail (AIRFLOW3.md pitfall 14).
    api, *others = [svc for svc in services() if svc.airflow]
    start_service(api, env)
    wait_http(f"http://{HOST}:{API_PORT}/api/v2/monitor/health", 180, "the Airflow api-server")
    starts = {svc.name: _log_size(svc.name) for svc in others}
    # Only a worker started now logs "ready."; one that was already running (a second `up`) is left alone.
    started = [svc.name for svc in others if not running_pid(svc.name)]
    for svc in others:
        start_service(svc, env)
    if EXECUTOR == "celery":
        wait_http(f"http://{HOST}:{FLOWER_PORT}/healthcheck", 120, "Flower")
        for name in started:
            if name.startswith("worker-"):
                wait_worker(name, starts[name], 180)
    return env


def check_executor() -> None:
    """Refuse to start a stack with another executor than the one it runs with; record the executor."""
    executor()
    path = STATE / "run" / "executor"
    running = path.read_text().strip() if path.exists() else ""
    if running and running != EXECUTOR and running_pid("api-server"):
        raise SystemExit(
            f"the stack of {STATE} runs with PULSE_EXECUTOR={running}; `make stop` first to start it with "
            f"{EXECUTOR}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXECUTOR + "\n")


def _log_size(name: str) -> int:
    path = STATE / "logs" / f"{name}.log"
    return path.stat().st_size if path.exists() else 0


def wait_worker(name: str, offset: int, timeout: float) -> None:
    """Wait until Celery worker ``name`` logged ``ready.`` (it consumes its queues) after ``offset``."""
    path = STATE / "logs" / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with path.open("rb") as fh:
            fh.seek(offset)
            if b" ready." in fh.read():
                log(f"{name} consumes its queues")
                return
        if not running_pid(name):
            raise SystemExit(f"Celery worker {name} exited; see {path}")
        time.sleep(1)
    raise SystemExit(f"Celery worker {name} was not ready within {timeout:.0f}s; see {path}")


def wait_redis(sec: dict[str, str], timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    client = redis.Redis(host=HOST, port=REDIS_PORT, password=sec["redis_password"], socket_timeout=2)
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"Redis did not answer on {HOST}:{REDIS_PORT}: {exc}; see {STATE / 'logs'}"
                ) from exc
            time.sleep(0.5)


# --------------------------------------------------------------------------------------------------
# object storage: the moto server keeps objects in memory; down saves them, up puts them back
# --------------------------------------------------------------------------------------------------


def s3_client(sec: dict[str, str] | None = None) -> Any:
    """A boto3 S3 client on the stack's S3 API."""
    import boto3

    sec = sec or load_secrets()
    return boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{S3_PORT}",
        aws_access_key_id="pulse",
        aws_secret_access_key=sec["s3_secret_key"],
        region_name="us-east-1",
    )


def _s3_keys(client: Any, bucket: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def s3_restore(sec: dict[str, str]) -> None:
    """Create the buckets; put back into an empty one the objects ``down`` saved in ``<state>/s3/<bucket>``."""
    client = s3_client(sec)
    for bucket in (ARCHIVE_BUCKET, EXPORT_BUCKET):
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        saved = STATE / "s3" / bucket
        if not saved.is_dir() or next(_s3_keys(client, bucket), None) is not None:
            continue
        files = [f for f in saved.rglob("*") if f.is_file()]
        for f in files:
            client.upload_file(str(f), bucket, f.relative_to(saved).as_posix())
        if files:
            log(f"{'s3':14} restored {len(files)} objects of s3://{bucket} from {saved}")


def s3_save() -> None:
    """Save every object of the buckets into ``<state>/s3/<bucket>`` (replacing what was saved before)."""
    if not running_pid("s3"):
        return
    client = s3_client()
    for bucket in (ARCHIVE_BUCKET, EXPORT_BUCKET):
        target, tmp = STATE / "s3" / bucket, STATE / "s3" / f".{bucket}.saving"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            keys = list(_s3_keys(client, bucket))
            for key in keys:
                dest = tmp / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(dest))
        except Exception as exc:  # the server may be gone already: keep what was saved before
            log(f"{'s3':14} could not save s3://{bucket} ({exc}); kept {target}")
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        log(f"{'s3':14} saved {len(keys)} objects of s3://{bucket} to {target}")


#: The order in which ``down`` stops the services, one stage after the other (:func:`stop_stages` adds the
#: Celery workers and Flower after the scheduler, Redis and the S3 API to the last stage). The scheduler
#: first: it queues no new task while the workers finish theirs, which still report to the api-server and
#: acknowledge their messages to Redis.
STOP_STAGES = (["triggerer", "dag-processor", "scheduler"], ["api-server"], ["webhook", "slack", "simulator"])


def _recorded_services() -> list[str]:
    """Services with a pid file: a Celery stack's workers are stopped whatever ``PULSE_EXECUTOR`` says now."""
    return sorted(p.stem for p in (STATE / "run").glob("*.pid")) if (STATE / "run").is_dir() else []


def stop_stages() -> list[list[str]]:
    """:data:`STOP_STAGES` with the services of this stack's executor and any other recorded as running."""
    known = [svc.name for svc in services()]
    recorded = _recorded_services()
    workers = sorted(
        {n for n in known + recorded if n.startswith("worker-")}, key=lambda n: int(n.split("-")[1] or 0)
    )
    celery = [*workers, *[n for n in ("flower",) if n in known or n in recorded]]
    support = [n for n in ("redis", "s3") if n in known or n in recorded]
    first, api, last = (list(stage) for stage in STOP_STAGES)
    return [first, *([celery] if celery else []), api, [*support, *last]]


@contextlib.contextmanager
def _stop_lock() -> Iterator[None]:
    """One ``down`` at a time per state folder (``make stop`` and the clean-up of the ``make run`` it ends)."""
    (STATE / "run").mkdir(parents=True, exist_ok=True)
    with (STATE / "run" / "stop.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for the other stop of this stack to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def runner_pid() -> int | None:
    """The pid of the running ``make run`` of this state folder (``dev.run_cycle``), if any."""
    pid = _read_pid(_pidfile(RUNNER))
    return pid if pid and is_running(pid) else None


def register_runner() -> None:
    """Record this process as the state folder's ``make run``, so that ``make stop`` ends it too."""
    other = runner_pid()
    if other and other != os.getpid():
        raise SystemExit(f"make run is already running for {STATE} (pid {other}); `make stop` ends it")
    (STATE / "run").mkdir(parents=True, exist_ok=True)
    _write_pid(_pidfile(RUNNER), os.getpid())


def unregister_runner() -> None:
    if _read_pid(_pidfile(RUNNER)) == os.getpid():
        _pidfile(RUNNER).unlink(missing_ok=True)


def down(runner_timeout: float = 90.0) -> None:
    """Stop everything of the stack: a running ``make run`` (SIGTERM), every service with all it started,
    PostgreSQL, and any other process carrying this state folder's :data:`MEMBER_VAR`."""
    with _stop_lock():
        runner = runner_pid()
        if runner == os.getpid():
            runner = None
        if runner:
            _signal(runner, signal.SIGTERM)
            log(f"{'make run':14} asked to stop (SIGTERM to pid {runner})")
        # In stages: running tasks report their end to the api-server, and may still be talking to the
        # simulator and the receivers, while the scheduler stops them.
        stages = stop_stages()
        for stage in stages:
            if stage is stages[-1]:
                s3_save()
            stop_services(stage)
        pg_down()
        strays = stack_processes(marked=True)
        if strays:
            killed = _end_processes(strays, 5.0)
            log(
                f"ended {_count(strays)} more of the stack: {_describe(strays)}"
                + (f"; killed {killed} after 5 s" if killed else "")
            )
        reap_children()
    if runner:
        # It stops too: it waited for the lock, finds the stack stopped, reaps its children and exits.
        deadline = time.monotonic() + runner_timeout
        while is_running(runner) and time.monotonic() < deadline:
            time.sleep(0.2)
        if is_running(runner):
            _signal(runner, signal.SIGKILL)
            log(f"{'make run':14} killed (pid {runner} did not exit within {runner_timeout:.0f} s)")
        else:
            log(f"{'make run':14} ended (pid {runner})")


def status() -> None:
    runner = runner_pid()
    if runner:
        print(f"{'make run':14} running pid {runner}")
    recorded = STATE / "run" / "executor"
    print(f"{'executor':14} {recorded.read_text().strip() if recorded.exists() else EXECUTOR}")
    names = [svc.name for svc in services()]
    for name in names + [n for n in _recorded_services() if n not in names and n != RUNNER]:
        pid = running_pid(name)
        print(f"{name:14} {'running pid ' + str(pid) if pid else 'stopped'}")
    print(f"{'postgres':14} {'running' if _pg_ready() else 'stopped'} ({HOST}:{PG_PORT})")


def psql(statement: str | None, role: str | None = None) -> int:
    sec = load_secrets()
    if not _pg_ready():
        pg_up()
    env = {**os.environ, "PGPASSWORD": sec["warehouse_password"]}
    if role:
        env["PGOPTIONS"] = f"-c role={role}"
    argv = [str(PG_BIN / "psql"), "-h", HOST, "-p", str(PG_PORT), "-U", WAREHOUSE_ROLE, "-d", WAREHOUSE_DB]
    if statement:
        argv += ["-v", "ON_ERROR_STOP=1", "-c", statement]
    return subprocess.call(argv, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start every service (idempotent)")
    sub.add_parser("down", help="stop every service")
    sub.add_parser("status", help="show what runs")
    sub.add_parser("pg-up", help="start PostgreSQL only and apply the warehouse migrations")
    sub.add_parser("env", help="print the Airflow environment as shell exports (secrets included)")
    p = sub.add_parser("psql", help="open psql on the warehouse")
    p.add_argument("--sql", default=None)
    p.add_argument("--role", default=None, help="act as this role, e.g. analyst (read-only)")
    d = sub.add_parser("dictionary", help="regenerate docs/data_dictionary.md from the migrated warehouse")
    d.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "up":
        up()
    elif args.cmd == "down":
        down()
    elif args.cmd == "status":
        status()
    elif args.cmd == "pg-up":
        pg_up()
        migrate_warehouse()
    elif args.cmd == "env":
        import shlex

        for k, v in airflow_env().items():
            if k.startswith(("AIRFLOW", "PULSE", "PYTHONPATH")):
                print(f"export {k}={shlex.quote(v)}")
    elif args.cmd == "psql":
        return psql(args.sql, args.role)
    elif args.cmd == "dictionary":
        pg_up()
        migrate_warehouse()
        os.environ["PULSE_WAREHOUSE_DSN"] = _dsn_uri()
        from pulse.warehouse import dictionary

        return dictionary.main(["--check"] if args.check else [])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Deployable as is: a bare Airflow, configured only the way an Astro deployment is, runs a full cycle on an
empty warehouse database.

No Docker here, so this is the closest honest stand-in for ``astro dev start`` / a Deployment:

* **Airflow**: the plain ``airflow`` commands (``db migrate``, ``connections import``, ``pools import``,
  ``api-server`` (one worker process: a 2-core machine), ``scheduler``, ``dag-processor``, ``triggerer``)
  from this venv, LocalExecutor, metadata in PostgreSQL, ``dags/`` and ``plugins/`` as the DAG and plugin
  folders and **no PYTHONPATH**: Airflow puts those folders on ``sys.path`` itself, as in the Astro image
  (whose ``AIRFLOW_HOME`` is the project).
* **Configuration**: the connections of ``airflow_settings.yaml`` (ids, types and every field the file sets),
  with hosts, ports and secrets filled in the way a user fills them (pointed at this test's services), imported
  with the CLI as the Astro CLI imports that file; its pools (and variables); the ``PULSE_*`` settings as
  ``.env`` gives them (archives and exports to ``s3://`` buckets through the ``pulse_object_storage``
  connection).
* **The warehouse**: an EMPTY database and its login role, created as a DBA would (``CREATE ROLE ... LOGIN
  CREATEROLE``, ``CREATE DATABASE ... OWNER``), nothing else: no schema, no migration, no ``analyst`` role.
  The first ``warehouse_ready`` setup task migrates it (several start at once: the advisory lock).
* **Stand-ins** started as plain processes: the test's own PostgreSQL cluster, the source simulator
  (``python -m dev.simulator``, the real APIs' stand-in), the Slack and webhook receivers and a moto S3
  server (its two buckets created as the infrastructure would). Nothing from ``dev/stack.py``.

The cycle, through the REST API as ``make run`` drives it: the six ingest DAGs (unpaused: each runs its latest
scheduled interval; a DAG with no tick due gets a manual run), ``enrich`` (through their Asset events), then
``quality``, ``export`` and ``retention`` one after the other. One module-scoped stack.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("PULSE_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
INGEST = sorted(p.stem for p in (ROOT / "dags").glob("ingest_*.py"))
AFTERWARDS = ["quality", "export", "retention"]
TERMINAL = {"success", "failed"}
#: The names a DBA gives the warehouse: the ones airflow_settings.yaml's warehouse_default uses.
SETTINGS = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
WAREHOUSE = next(c for c in SETTINGS["connections"] if c["conn_id"] == "warehouse_default")
ARCHIVE_BUCKET, EXPORT_BUCKET = "pulse-archive", "pulse-exports"
STORAGE_CONN = "pulse_object_storage"
#: Wall-clock budget of the whole module (the stack's start and the cycle).
CYCLE_TIMEOUT = 600

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def as_root() -> bool:
    return os.geteuid() == 0


@dataclass
class Bare:
    """The bare deployment: its folder, ports, secrets, processes and REST session."""

    home: Path
    ports: dict[str, int]
    secrets: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pg_data(self) -> Path:
        return self.home / "pg" / "data"

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.ports['api']}"

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    # --- PostgreSQL (the DBA's side) -------------------------------------------------------------------------
    def pg(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {"user": "postgres", "group": "postgres", "cwd": "/"} if as_root() else {}
        return subprocess.run(args, text=True, capture_output=True, check=False, **kw)

    def admin(self, sql: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(
            host=HOST,
            port=self.ports["pg"],
            user="postgres",
            password=self.secrets["pg_admin"],
            dbname=dbname,
            autocommit=True,
        ) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def warehouse(self, sql: str, role: str | None = None) -> list[tuple[Any, ...]]:
        """``sql`` in the warehouse as its login role (``role``: after ``SET ROLE``)."""
        import psycopg

        with psycopg.connect(
            host=HOST,
            port=self.ports["pg"],
            user=WAREHOUSE["conn_login"],
            password=self.secrets["warehouse"],
            dbname=WAREHOUSE["conn_schema"],
            autocommit=True,
        ) as conn:
            if role:
                conn.execute(f"SET ROLE {role}")
            return conn.execute(sql).fetchall()

    # --- processes --------------------------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.home / "logs" / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if (self.pg_data / "postmaster.pid").exists():
            self.pg([str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data), "-m", "immediate", "-w", "stop"])

    def airflow(self, *args: str, timeout: float = 240) -> str:
        res = subprocess.run(
            [str(VENV_BIN / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert res.returncode == 0, f"airflow {' '.join(args)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res.stdout

    def logs(self, chars: int = 2500) -> str:
        out = []
        for path in sorted((self.home / "logs").glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)[-12000:]

    # --- REST API ---------------------------------------------------------------------------------------------
    def login(self) -> None:
        resp = requests.post(
            f"{self.api}/auth/token",
            json={"username": "admin", "password": self.secrets["admin"]},
            timeout=30,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """One REST call, tried again after a timeout (the api-server also serves the tasks' Execution API:
        on a loaded 2-core machine an answer can take a while)."""
        for attempt in range(4):
            try:
                return self.session.request(method, f"{self.api}/api/v2{path}", timeout=60, **kw)
            except (requests.Timeout, requests.ConnectionError):
                if attempt == 3:
                    raise
                time.sleep(5)
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        resp = self.request("GET", path, params=params)
        resp.raise_for_status()
        return resp.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        resp = self.request(method, path, json=body)
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json()

    def task_logs(self, task_id: str) -> dict[str, str]:
        return {
            str(p.relative_to(self.home)): p.read_text(errors="replace")
            for p in (self.home / "airflow" / "logs").rglob(f"task_id={task_id}/attempt=*.log")
        }


def wait_until(what: str, probe: Any, timeout: float, bare: Bare, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as exc:  # a service that is still starting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last!r})\n{bare.logs()}")


# --- the deployment ---------------------------------------------------------------------------------------------
def start_postgres(bare: Bare) -> None:
    """A throw-away cluster; then, as a DBA: Airflow's metadata database, and the warehouse's login role and
    EMPTY database named as airflow_settings.yaml names them (the role may create roles: migration 0005
    creates ``analyst``)."""
    data = bare.pg_data
    data.parent.mkdir(parents=True)
    pwfile = data.parent / "pwfile"
    pwfile.write_text(bare.secrets["pg_admin"] + "\n")
    if as_root():
        shutil.chown(data.parent, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    res = bare.pg(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    assert res.returncode == 0, res.stderr
    pwfile.unlink()
    opts = f"-c listen_addresses={HOST} -c port={bare.ports['pg']} -c unix_socket_directories={data}"
    res = bare.pg(
        [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-o", opts, "-w", "start"]
    )
    assert res.returncode == 0, res.stdout + res.stderr
    role, db = WAREHOUSE["conn_login"], WAREHOUSE["conn_schema"]
    bare.admin(f"CREATE ROLE airflow LOGIN PASSWORD '{bare.secrets['airflow_db']}'")
    bare.admin("CREATE DATABASE airflow OWNER airflow")
    bare.admin(f"CREATE ROLE {role} LOGIN CREATEROLE PASSWORD '{bare.secrets['warehouse']}'")
    bare.admin(f"CREATE DATABASE {db} OWNER {role}")


def start_stand_ins(bare: Bare) -> None:
    """The simulator, the Slack and webhook receivers and the S3 server, and the two buckets."""
    py = sys.executable
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "*",
        "PULSE_WEBHOOK_SECRET": bare.secrets["webhook"],
    }
    p = bare.ports
    bare.start("simulator", [py, "-m", "dev.simulator", "--host", HOST, "--port", str(p["sim"])], env)
    slack_out = str(bare.home / "slack.jsonl")
    bare.start(
        "slack",
        [py, "-m", "dev.slack_receiver", "--host", HOST, "--port", str(p["slack"]), "--record", slack_out],
        env,
    )
    bare.start(
        "webhook",
        [
            py,
            "-m",
            "dev.webhook_receiver",
            "--host",
            HOST,
            "--port",
            str(p["webhook"]),
            "--secret-env",
            "PULSE_WEBHOOK_SECRET",
            "--out",
            str(bare.home / "deliveries.jsonl"),
        ],
        env,
    )
    bare.start("s3", [py, "-m", "moto.server", "-H", HOST, "-p", str(p["s3"])], env)
    for name, path in (("sim", "/_sim/health"), ("slack", "/_messages"), ("webhook", "/_deliveries")):
        url = bare.url(name) + path
        wait_until(name, lambda url=url: requests.get(url, timeout=5).ok, 60, bare)
    wait_until("s3", lambda: requests.get(bare.url("s3"), timeout=5).status_code < 500, 60, bare)
    s3 = s3_client(bare)
    for bucket in (ARCHIVE_BUCKET, EXPORT_BUCKET):
        s3.create_bucket(Bucket=bucket)


def s3_client(bare: Bare) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=bare.url("s3"),
        aws_access_key_id="pulse",
        aws_secret_access_key=bare.secrets["s3"],
        region_name="us-east-1",
    )


def filled_connections(bare: Bare) -> dict[str, dict[str, Any]]:
    """airflow_settings.yaml's connections as a user fills them for this test's services: each entry's id, type
    and fields from the file; hosts, ports and secrets (an API key where the file leaves it empty) from here.
    Source credentials are the simulator's (its stand-in keys, ``SourceSpec.local_conn``)."""
    from pulse.sources.spec import all_sources

    specs = {spec.default_conn_id: spec for spec in all_sources()}
    fills: dict[str, dict[str, Any]] = {
        "warehouse_default": {"host": HOST, "port": bare.ports["pg"], "password": bare.secrets["warehouse"]},
        "slack_failures": {"host": bare.url("slack"), "password": "T000/B000/FAILURES"},
        "slack_quality": {"host": bare.url("slack"), "password": "T000/B000/QUALITY"},
        "slack_trends": {"host": bare.url("slack"), "password": "T000/B000/TRENDS"},
        "pulse_pseudonym": {"password": bare.secrets["pseudonym"]},
        "webhook_local": {"host": f"{bare.url('webhook')}/hooks/pulse", "password": bare.secrets["webhook"]},
        STORAGE_CONN: {"password": bare.secrets["s3"], "extra": {"endpoint_url": bare.url("s3")}},
    }
    for conn_id, spec in specs.items():
        fills[conn_id] = {"host": bare.url("sim"), **spec.local_conn}
    out: dict[str, dict[str, Any]] = {}
    for entry in SETTINGS["connections"]:
        conn_id = entry["conn_id"]
        assert conn_id in fills, f"airflow_settings.yaml has {conn_id}: say here how a user fills it in"
        conn = {
            (k if k == "conn_type" else k.removeprefix("conn_")): v
            for k, v in entry.items()
            if k != "conn_id" and v not in ("", None)
        }
        fill = dict(fills[conn_id])
        extra = {**(conn.pop("extra", None) or {}), **(fill.pop("extra", None) or {})}
        conn.update(fill)
        if extra:
            conn["extra"] = json.dumps(extra)
        out[conn_id] = conn
    missing = set(fills) - set(out) - set(specs)
    assert not missing, f"connections the pipeline needs that airflow_settings.yaml lacks: {missing}"
    return out


def airflow_env(bare: Bare) -> dict[str, str]:
    """What the Airflow processes get: the platform's settings (database, secrets, ports, the executor) and
    the PULSE_* settings of .env. No PYTHONPATH and no AIRFLOW_CONN_*: Airflow's own sys.path handling and
    the imported connections only."""
    home = bare.home / "airflow"
    home.mkdir()
    pwfile = home / "passwords.json"
    pwfile.write_text(json.dumps({"admin": bare.secrets["admin"]}))
    api = bare.api
    db = f"airflow:{bare.secrets['airflow_db']}@{HOST}:{bare.ports['pg']}/airflow"
    return {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(bare.home),
        "LANG": "C.UTF-8",
        "NO_PROXY": "*",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__FERNET_KEY": bare.secrets["fernet"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pwfile),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(bare.ports["api"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": bare.secrets["api"],
        "AIRFLOW__API_AUTH__JWT_SECRET": bare.secrets["jwt"],
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(bare.ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(bare.ports["trigger_logs"]),
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",
        # .env (docs/deploy.md, .env.example): archives and exports in object storage, the pseudonym key.
        "PULSE_ARCHIVE_URL": f"s3://{ARCHIVE_BUCKET}",
        "PULSE_ARCHIVE_CONN_ID": STORAGE_CONN,
        "PULSE_EXPORT_URL": f"s3://{EXPORT_BUCKET}",
        "PULSE_EXPORT_CONN_ID": STORAGE_CONN,
        "PULSE_PSEUDONYM_KEY": bare.secrets["pseudonym"],
    }


def start_airflow(bare: Bare) -> None:
    """``airflow db migrate``; connections and pools imported from the settings; then the four services."""
    bare.env = airflow_env(bare)
    bare.airflow("db", "migrate", timeout=300)
    conns = bare.home / "connections.json"
    conns.write_text(json.dumps(filled_connections(bare)))
    pools = bare.home / "pools.json"
    pools.write_text(
        json.dumps(
            {
                p["pool_name"]: {"slots": p["pool_slot"], "description": p.get("pool_description", "")}
                for p in SETTINGS["pools"]
            }
        )
    )
    imports = [
        subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args],
            env=bare.env,
            cwd=bare.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for args in (("connections", "import", str(conns)), ("pools", "import", str(pools)))
    ]
    if SETTINGS.get("variables"):
        variables = bare.home / "variables.json"
        variables.write_text(
            json.dumps({v["variable_name"]: v["variable_value"] for v in SETTINGS["variables"]})
        )
        bare.airflow("variables", "import", str(variables))
    for proc in imports:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode()[-3000:]
    airflow = str(VENV_BIN / "airflow")
    bare.start(
        "api-server",
        [airflow, "api-server", "--host", HOST, "--port", str(bare.ports["api"]), "--workers", "1"],
        bare.env,
    )
    wait_until(
        "the api-server", lambda: requests.get(f"{bare.api}/api/v2/monitor/health", timeout=5).ok, 240, bare
    )
    bare.start("scheduler", [airflow, "scheduler", "--skip-serve-logs"], bare.env)
    bare.start("dag-processor", [airflow, "dag-processor"], bare.env)
    bare.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"], bare.env)
    bare.login()


# --- the cycle --------------------------------------------------------------------------------------------------
def runs_since(bare: Bare, dag_id: str, since: datetime) -> list[dict[str, Any]]:
    listed = bare.get(f"/dags/{dag_id}/dagRuns", limit=50, order_by="-run_after")["dag_runs"]
    return [r for r in listed if datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= since]


def run_once(
    bare: Bare, dag_ids: list[str], timeout: float, conf: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each DAG's run of this cycle: unpaused, it runs its latest scheduled interval if a tick is due (as on a
    first deployment); a DAG with no tick due, or none within 90 s, gets a manual run (with ``conf``). Waits
    for them all."""
    since = datetime.now(tz=UTC)
    awaited = set()
    for dag_id in dag_ids:
        dag = bare.get(f"/dags/{dag_id}")
        due = dag.get("next_dagrun_run_after")
        bare.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        if due and datetime.fromisoformat(due) <= since and conf is None:
            awaited.add(dag_id)
        else:
            bare.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
    deadline = time.monotonic() + timeout
    while True:
        by_dag = {dag_id: runs_since(bare, dag_id, since) for dag_id in dag_ids}
        for dag_id in sorted(awaited):
            if by_dag[dag_id]:
                awaited.discard(dag_id)
            elif (datetime.now(tz=UTC) - since).total_seconds() > 90:
                awaited.discard(dag_id)
                bare.send("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
        runs = [r for rs in by_dag.values() for r in rs]
        if all(by_dag.values()) and all(r["state"] in TERMINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"runs not done within {timeout:.0f}s: {[(r['dag_id'], r['state']) for r in runs]}")
        time.sleep(3)


def wait_followers(bare: Bare, dag_id: str, since: datetime, timeout: float) -> list[dict[str, Any]]:
    """The Asset-triggered runs of ``dag_id`` since ``since``, once done and no new one came for a while."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        runs = runs_since(bare, dag_id, since)
        quiet = quiet + 1 if runs and all(r["state"] in TERMINAL for r in runs) else 0
        if quiet >= 3:
            return runs
        time.sleep(4)
    pytest.fail(f"{dag_id} runs not done within {timeout:.0f}s\n{bare.logs()}")


@pytest.fixture(scope="module")
def bare() -> Iterator[Bare]:
    home = Path(tempfile.mkdtemp(prefix="pulse-bare-"))
    home.chmod(0o755)  # the postgres user enters it
    (home / "logs").mkdir()
    from cryptography.fernet import Fernet

    names = ["pg", "api", "sim", "slack", "webhook", "s3", "worker_logs", "trigger_logs"]
    deployment = Bare(
        home=home,
        ports={name: free_port() for name in names},
        secrets={
            **{
                k: secrets.token_urlsafe(18)
                for k in ("pg_admin", "airflow_db", "warehouse", "admin", "webhook")
            },
            **{k: secrets.token_hex(32) for k in ("api", "jwt", "pseudonym", "s3")},
            "fernet": Fernet.generate_key().decode(),
        },
    )
    t0 = time.monotonic()
    try:
        start_postgres(deployment)
        start_stand_ins(deployment)
        start_airflow(deployment)
        wanted = {*INGEST, "enrich", "trends", *AFTERWARDS}

        def registered() -> bool:
            errors = deployment.get("/importErrors").get("import_errors", [])
            assert not errors, f"DAG import errors: {errors}"
            return wanted <= {d["dag_id"] for d in deployment.get("/dags", limit=100)["dags"]}

        wait_until("the dag-processor registers the DAGs", registered, 240, deployment, every=3)
        print(f"\n[bare] Airflow up and DAGs registered in {time.monotonic() - t0:.0f} s", flush=True)
        t1 = time.monotonic()
        since = datetime.now(tz=UTC)
        deployment.send("PATCH", "/dags/enrich", {"is_paused": False})  # before the ingest runs' Asset events
        deployment.runs += run_once(deployment, INGEST, timeout=CYCLE_TIMEOUT)
        deployment.runs += wait_followers(deployment, "enrich", since, timeout=300)
        for dag_id in AFTERWARDS:
            if dag_id == "quality":  # trends runs on quality's published_hours Asset: unpaused before it
                deployment.send("PATCH", "/dags/trends", {"is_paused": False})
            started = datetime.now(tz=UTC)
            deployment.runs += run_once(deployment, [dag_id], timeout=480)
            if dag_id == "quality":
                deployment.runs += wait_followers(deployment, "trends", started, timeout=300)
        # The scheduled export exports the days every source has published; Alpha Vantage runs on weekdays
        # only, so on some days there is none yet. Then a user exports a chosen day: the newest one every
        # source has published (the `day` param).
        if not deployment.warehouse("SELECT count(*) FROM ops.exports")[0][0]:
            horizon = deployment.warehouse("SELECT min(published_until) FROM quality.publish_state")[0][0]
            day = (horizon - timedelta(days=1)).date().isoformat()
            print(f"[bare] nothing was due for export: exporting {day} by hand", flush=True)
            deployment.runs += run_once(deployment, ["export"], timeout=300, conf={"day": day})
        print(f"[bare] cycle done in {time.monotonic() - t1:.0f} s", flush=True)
        yield deployment
    finally:
        deployment.stop_all()
        print(f"[bare] stopped; {time.monotonic() - t0:.0f} s in all", flush=True)
        if os.environ.get("PULSE_KEEP_BARE"):  # debugging: keep the logs and the data directory
            print(f"[bare] kept {home}", flush=True)
        else:
            shutil.rmtree(home, ignore_errors=True)


def test_every_run_of_the_cycle_succeeds(bare: Bare) -> None:
    by_dag: dict[str, list[str]] = {}
    for run in bare.runs:
        by_dag.setdefault(run["dag_id"], []).append(run["state"])
    assert set(by_dag) == {*INGEST, "enrich", "trends", *AFTERWARDS}, by_dag
    failed = {d: s for d, s in by_dag.items() if set(s) != {"success"}}
    assert not failed, f"failed runs: {failed}\n{bare.logs()}"


def test_the_first_warehouse_ready_migrated_the_empty_database(bare: Bare) -> None:
    from pulse.warehouse.bootstrap import script_directory

    head = script_directory().get_current_head()
    assert bare.warehouse("SELECT version_num FROM ops.alembic_version") == [(head,)]
    logs = bare.task_logs("warehouse_ready")
    # Attempts that reached the task's code (on a loaded machine an attempt can die before it, when its
    # supervisor cannot reach the Execution API in time: Airflow retries it, and the run still succeeds).
    ran = {p: text for p, text in logs.items() if "warehouse: " in text}
    assert len(ran) >= len(bare.runs), (sorted(ran), len(bare.runs))
    migrated = [p for p, text in ran.items() if f"warehouse: migrated base -> {head}" in text]
    assert len(migrated) == 1, {p: t[-800:] for p, t in ran.items()}
    others = [p for p, text in ran.items() if f"warehouse: at head {head}" in text]
    assert len(others) == len(ran) - 1, sorted(set(ran) - set(migrated) - set(others))
    assert "applied migration 0001" in logs[migrated[0]]
    # The DBA created the role with CREATEROLE: migration 0005 created analyst, the bootstrap made the
    # pipeline's role a member (as the local stack does).
    assert bare.admin(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'analyst'", WAREHOUSE["conn_schema"]
    ) == [(False,)]
    assert bare.warehouse("SELECT pg_has_role(current_user, 'analyst', 'MEMBER')") == [(True,)]


def test_rows_reach_core_and_published_and_analysts_read_them(bare: Bare) -> None:
    counts = dict(bare.warehouse("SELECT source, count(*) FROM core.documents GROUP BY 1"))
    assert {"reddit", "x", "newsapi"} <= set(counts), counts
    assert bare.warehouse("SELECT count(*) FROM core.market_bars")[0][0] > 0
    assert bare.warehouse("SELECT count(*) FROM published.documents")[0][0] > 0
    assert bare.warehouse("SELECT count(*) FROM enriched.document_features")[0][0] > 0
    # The analyst group role: reads an analytics view, and nothing of raw.
    volume = bare.warehouse("SELECT coalesce(sum(items), 0) FROM analytics.daily_volume", role="analyst")
    assert volume[0][0] > 0
    with pytest.raises(Exception, match="permission denied"):
        bare.warehouse("SELECT count(*) FROM raw.api_responses", role="analyst")


def test_archives_and_exports_land_in_object_storage(bare: Bare) -> None:
    s3 = s3_client(bare)
    archives = [o["Key"] for o in s3.list_objects_v2(Bucket=ARCHIVE_BUCKET).get("Contents", [])]
    exports = [o["Key"] for o in s3.list_objects_v2(Bucket=EXPORT_BUCKET).get("Contents", [])]
    assert archives, "retention archived nothing"
    assert any(k.endswith("manifest.json") for k in exports), exports
    recorded = bare.warehouse("SELECT count(*) FROM ops.archives WHERE status = 'dropped'")[0][0]
    assert recorded > 0
    assert bare.warehouse("SELECT count(*) FROM ops.exports")[0][0] > 0

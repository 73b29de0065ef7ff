"""The health endpoint (issue 17 item 4): ``GET /pulse/health`` of the plugin ``plugins/pulse_health_plugin.py``
with the checks of ``pulse.health``, through FastAPI's TestClient on the test warehouse.

Without a token Airflow's own auth dependency answers 401. With the user dependency overridden: a seeded,
healthy pipeline answers 200 with every part healthy; then each part is broken on its own (scheduler down,
warehouse on a closed port, migrations behind, a breaker open, a stale source, a publication lag, object storage
on a closed port or a missing folder) and the answer is 503 naming exactly that part. Airflow's health is
monkeypatched (no scheduler runs here). Times are on the pipeline clock (``PULSE_NOW``), never the machine's.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pulse import health
from pulse.sources.spec import all_sources, get_source
from pulse.warehouse.bootstrap import script_directory
from pulse.windows import utcnow
from tests.conftest import set_connection, truncate_warehouse
from tests.health.conftest import closed_port

HEALTHY_AIRFLOW = {
    "metadatabase": {"status": "healthy"},
    "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-11-28T12:04:55+00:00"},
    "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": "2026-11-28T12:04:55+00:00"},
    "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": "2026-11-28T12:04:55+00:00"},
}
PARTS = {"airflow", "warehouse", "migrations", "sources", "publication", "object_storage"}


@pytest.fixture
def client(plugin: Any) -> Iterator[TestClient]:
    """The plugin's app with Airflow's user dependency overridden (an authenticated caller)."""
    from airflow.api_fastapi.core_api.security import get_user

    app = plugin.pulse_app.app
    app.dependency_overrides[get_user] = lambda: object()
    try:
        yield TestClient(plugin.pulse_app)
    finally:
        app.dependency_overrides.clear()


@pytest.fixture
def airflow_health(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Airflow's health as get_airflow_health() answers it: healthy unless a test changes it."""
    from airflow.api.common import airflow_health as module

    answer = json.loads(json.dumps(HEALTHY_AIRFLOW))
    monkeypatch.setattr(module, "get_airflow_health", lambda: answer)
    return answer


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3: dict[str, str]) -> dict[str, str]:
    """Archives in a local folder, exports in the moto bucket: both reachable."""
    archive = tmp_path / "archive"
    archive.mkdir()
    env = {
        "PULSE_ARCHIVE_URL": f"file://{archive}",
        "PULSE_EXPORT_URL": f"s3://{s3['bucket']}/exports",
        "PULSE_EXPORT_CONN_ID": s3["conn_id"],
    }
    monkeypatch.delenv("PULSE_ARCHIVE_CONN_ID", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def healthy(db: Any, airflow_health: dict[str, Any], storage: dict[str, str]) -> Iterator[Any]:
    """A pipeline where everything is well: every source's breaker closed, last success 10 minutes ago,
    published up to 30 minutes ago (pipeline clock). Yields the warehouse connection for the test to break."""
    truncate_warehouse(db)
    now = utcnow()
    sources = [spec.name for spec in all_sources()]
    db.execute(
        "INSERT INTO quality.source_health (source, state, consecutive_failures, last_success_at)"
        " SELECT s, 'closed', 0, %s FROM unnest(%s::text[]) s",
        (now - timedelta(minutes=10), sources),
    )
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id)"
        " SELECT s, %s, 'tests' FROM unnest(%s::text[]) s",
        (now - timedelta(minutes=30), sources),
    )
    yield db
    truncate_warehouse(db)


def get_health(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = client.get("/health")
    return resp.status_code, resp.json()


def assert_fails_only(client: TestClient, part: str) -> dict[str, Any]:
    status, body = get_health(client)
    assert status == 503, body
    assert body["status"] == "unhealthy"
    assert body["failing"] == [part], body
    assert body["parts"][part]["status"] == "unhealthy"
    return body


# --------------------------------------------------------------------------------------------------
# auth and the healthy answer
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def auth_manager(monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Iterator[Any]:
    """Airflow's auth manager (the simple one), as the api-server initialises it, with a JWT secret."""
    from airflow.api_fastapi import app as api_app

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "health-tests-jwt-secret")
    manager = api_app.init_auth_manager()
    yield manager
    api_app.purge_cached_app()


def test_without_a_token_airflow_auth_answers_401_and_a_real_token_is_accepted(
    plugin: Any, auth_manager: Any, airflow_health: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real dependency (nothing overridden): no token 401, a forged one 403, a signed one gets through."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setattr(health, "CHECKS", {"airflow": health.check_airflow})
    plugin.pulse_app.app.dependency_overrides.clear()
    anonymous = TestClient(plugin.pulse_app)
    resp = anonymous.get("/health")
    assert resp.status_code == 401, resp.text
    assert anonymous.get("/health", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    resp = anonymous.get("/health", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["parts"]["airflow"]["status"] == "healthy"


def test_the_plugin_mounts_its_app_under_pulse(plugin: Any) -> None:
    (entry,) = plugin.PulseHealthPlugin.fastapi_apps
    assert entry["url_prefix"] == "/pulse" and entry["app"] is plugin.pulse_app
    assert plugin.PulseHealthPlugin.name == "pulse_health"


def test_a_healthy_pipeline_answers_200_with_every_part_healthy(healthy: Any, client: TestClient) -> None:
    status, body = get_health(client)
    assert status == 200, json.dumps(body, indent=1)
    assert body["status"] == "healthy" and body["failing"] == []
    assert set(body["parts"]) == PARTS
    assert {name: part["status"] for name, part in body["parts"].items()} == dict.fromkeys(PARTS, "healthy")
    assert body["checked_at"] == utcnow().isoformat()  # the pipeline clock, PULSE_NOW
    sources = body["parts"]["sources"]["sources"]
    assert set(sources) == {spec.name for spec in all_sources()}
    assert sources["reddit"]["age_minutes"] == 10.0
    assert sources["reddit"]["limit_minutes"] == get_source("reddit").freshness.max_age_minutes
    assert body["parts"]["publication"]["sources"]["reddit"]["lag_minutes"] == 30.0
    assert body["parts"]["migrations"]["current"] == script_directory().get_current_head()
    roots = body["parts"]["object_storage"]["roots"]
    assert roots["archive"]["status"] == roots["export"]["status"] == "healthy"
    assert body["parts"]["airflow"]["components"]["scheduler"]["status"] == "healthy"


# --------------------------------------------------------------------------------------------------
# each failing part
# --------------------------------------------------------------------------------------------------


def test_scheduler_unhealthy(healthy: Any, client: TestClient, airflow_health: dict[str, Any]) -> None:
    airflow_health["scheduler"]["status"] = "unhealthy"
    body = assert_fails_only(client, "airflow")
    assert "scheduler unhealthy" in body["parts"]["airflow"]["detail"]


def test_a_triggerer_that_never_ran_is_accepted_a_dag_processor_is_not(
    healthy: Any, client: TestClient, airflow_health: dict[str, Any]
) -> None:
    airflow_health["triggerer"]["status"] = None
    assert get_health(client)[0] == 200
    airflow_health["dag_processor"]["status"] = None
    body = assert_fails_only(client, "airflow")
    assert "dag_processor never started" in body["parts"]["airflow"]["detail"]


def test_warehouse_down_answers_503_fast_and_names_only_the_warehouse(
    healthy: Any, client: TestClient, dead_warehouse: str
) -> None:
    started = time.perf_counter()
    body = assert_fails_only(client, "warehouse")
    assert time.perf_counter() - started < 5
    part = body["parts"]["warehouse"]
    assert part["error"] == "OperationalError" and "refused" in part["detail"].lower()
    for dependent in ("migrations", "sources", "publication"):
        assert body["parts"][dependent]["status"] == "unknown"
    text = json.dumps(body)
    assert dead_warehouse not in text and "Traceback" not in text


def test_a_hung_warehouse_is_cut_off_by_the_check_timeout(
    healthy: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse that accepts the TCP connection and never answers: the part times out, the answer comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    monkeypatch.setattr(health, "CONNECT_TIMEOUT_S", 30)  # the libpq timeout alone would be too late
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 1.5)
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": listener.getsockname()[1]}),
    )
    try:
        started = time.perf_counter()
        body = assert_fails_only(client, "warehouse")
        assert time.perf_counter() - started < 4
        assert body["parts"]["warehouse"]["error"] == "Timeout"
    finally:
        listener.close()


def test_migrations_behind(healthy: Any, client: TestClient) -> None:
    head = script_directory().get_current_head()
    previous = script_directory().get_revision(head).down_revision
    healthy.execute("UPDATE ops.alembic_version SET version_num = %s", (previous,))
    try:
        body = assert_fails_only(client, "migrations")
    finally:
        healthy.execute("UPDATE ops.alembic_version SET version_num = %s", (head,))
    assert body["parts"]["migrations"]["current"] == previous
    assert body["parts"]["migrations"]["head"] == head


def test_an_unmigrated_warehouse_names_only_the_migrations(healthy: Any, client: TestClient) -> None:
    """A warehouse behind whose tables the checks cannot read: sources and publication are unknown."""
    head = script_directory().get_current_head()
    healthy.execute("UPDATE ops.alembic_version SET version_num = %s", ("0001",))
    healthy.execute("ALTER VIEW analytics.source_health RENAME TO source_health_hidden")
    try:
        body = assert_fails_only(client, "migrations")
    finally:
        healthy.execute("ALTER VIEW analytics.source_health_hidden RENAME TO source_health")
        healthy.execute("UPDATE ops.alembic_version SET version_num = %s", (head,))
    sources = body["parts"]["sources"]
    assert sources["status"] == "unknown", sources
    assert "not at the migrations' head" in sources["detail"] and "UndefinedTable" in sources["detail"]
    assert body["parts"]["publication"]["status"] == "healthy"  # its table is there: its own verdict


def test_migrations_behind_leave_the_other_parts_own_verdicts(healthy: Any, client: TestClient) -> None:
    """Only errors are blamed on the migrations: a source judged failing still fails in its own name."""
    head = script_directory().get_current_head()
    healthy.execute("UPDATE ops.alembic_version SET version_num = %s", ("0001",))
    healthy.execute("UPDATE quality.source_health SET state = 'open' WHERE source = 'x'")
    try:
        status, body = get_health(client)
    finally:
        healthy.execute("UPDATE ops.alembic_version SET version_num = %s", (head,))
    assert status == 503 and body["failing"] == ["migrations", "sources"], body
    assert body["parts"]["sources"]["failing"] == ["x"]


def test_a_breaker_open(healthy: Any, client: TestClient) -> None:
    healthy.execute(
        "UPDATE quality.source_health SET state = 'open', consecutive_failures = 3, opened_at = %s"
        " WHERE source = 'x'",
        (utcnow() - timedelta(minutes=5),),
    )
    body = assert_fails_only(client, "sources")
    part = body["parts"]["sources"]
    assert part["failing"] == ["x"]
    assert part["sources"]["x"]["circuit_state"] == "open"
    assert "circuit breaker open" in part["detail"] and part["detail"].startswith("x:")


def test_a_half_open_breaker_is_reported_not_failing(healthy: Any, client: TestClient) -> None:
    healthy.execute("UPDATE quality.source_health SET state = 'half_open' WHERE source = 'x'")
    status, body = get_health(client)
    assert status == 200, body
    assert body["parts"]["sources"]["sources"]["x"]["circuit_state"] == "half_open"


def test_a_stale_source(healthy: Any, client: TestClient) -> None:
    limit = get_source("reddit").freshness.max_age_minutes
    healthy.execute(
        "UPDATE quality.source_health SET last_success_at = %s WHERE source = 'reddit'",
        (utcnow() - timedelta(minutes=limit + 1),),
    )
    body = assert_fails_only(client, "sources")
    part = body["parts"]["sources"]
    assert part["failing"] == ["reddit"]
    assert part["sources"]["reddit"]["age_minutes"] == limit + 1
    assert "last successful ingest" in part["detail"]


def test_a_source_that_never_succeeded(healthy: Any, client: TestClient) -> None:
    healthy.execute("DELETE FROM quality.source_health WHERE source = 'github'")
    body = assert_fails_only(client, "sources")
    assert body["parts"]["sources"]["failing"] == ["github"]
    assert "no successful ingest run yet" in body["parts"]["sources"]["detail"]


def test_publication_lag_over_its_threshold(healthy: Any, client: TestClient) -> None:
    spec = get_source("newsapi")
    limit = spec.freshness.max_age_minutes + health.QUALITY_CYCLE.total_seconds() / 60
    just_inside = utcnow() - timedelta(minutes=limit)
    healthy.execute(
        "UPDATE quality.publish_state SET published_until = %s WHERE source = 'newsapi'", (just_inside,)
    )
    assert get_health(client)[0] == 200  # at the limit: still healthy
    healthy.execute(
        "UPDATE quality.publish_state SET published_until = %s WHERE source = 'newsapi'",
        (just_inside - timedelta(minutes=1),),
    )
    body = assert_fails_only(client, "publication")
    part = body["parts"]["publication"]
    assert part["failing"] == ["newsapi"]
    assert part["sources"]["newsapi"]["lag_minutes"] == limit + 1
    assert part["sources"]["newsapi"]["limit_minutes"] == limit


def test_a_horizon_at_infinity_is_published(healthy: Any, client: TestClient) -> None:
    healthy.execute("UPDATE quality.publish_state SET published_until = 'infinity'")
    status, body = get_health(client)
    assert status == 200, body
    assert body["parts"]["publication"]["sources"]["reddit"]["published_until"] == "infinity"


def test_object_storage_unreachable_s3(
    healthy: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_connection(
        "pulse_dead_s3",
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "aws-secret-not-shown",
            "extra": {"endpoint_url": f"http://127.0.0.1:{closed_port()}", "region_name": "us-east-1"},
        },
    )
    monkeypatch.setenv("PULSE_EXPORT_CONN_ID", "pulse_dead_s3")
    started = time.perf_counter()
    body = assert_fails_only(client, "object_storage")
    assert time.perf_counter() - started < 5
    part = body["parts"]["object_storage"]
    assert part["failing"] == ["export"]
    assert part["roots"]["archive"]["status"] == "healthy"
    assert part["roots"]["export"]["url"] == "s3://pulse-test/exports"
    assert "aws-secret-not-shown" not in json.dumps(body)


def test_object_storage_missing_folder(
    healthy: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSE_ARCHIVE_URL", f"file://{tmp_path / 'gone'}")
    body = assert_fails_only(client, "object_storage")
    part = body["parts"]["object_storage"]
    assert part["failing"] == ["archive"]
    assert part["roots"]["archive"]["detail"] == "the folder does not exist"


def test_object_storage_not_configured(
    healthy: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSE_ARCHIVE_URL")
    body = assert_fails_only(client, "object_storage")
    assert body["parts"]["object_storage"]["detail"] == "archive: PULSE_ARCHIVE_URL is not set"


# --------------------------------------------------------------------------------------------------
# the runner itself: isolation, time bound, no secrets
# --------------------------------------------------------------------------------------------------


def test_one_check_raising_does_not_stop_the_others_and_leaks_nothing() -> None:
    def boom() -> dict[str, Any]:
        raise RuntimeError(
            "cannot reach postgresql://pulse_loader:hunter2@db:5432/warehouse password=hunter2"
        )

    answer = health.check_health({"boom": boom, "fine": lambda: {"status": "healthy", "detail": "ok"}})
    assert answer["status"] == "unhealthy" and answer["failing"] == ["boom"]
    assert answer["parts"]["fine"]["status"] == "healthy"
    assert answer["parts"]["boom"]["error"] == "RuntimeError"
    assert "hunter2" not in json.dumps(answer)
    assert "postgresql://***@db:5432/warehouse" in answer["parts"]["boom"]["detail"]


def test_a_check_that_hangs_is_a_failing_part_within_the_timeout() -> None:
    def hang() -> dict[str, Any]:
        time.sleep(3)
        return {"status": "healthy"}

    started = time.perf_counter()
    answer = health.check_health({"hang": hang, "fine": lambda: {"status": "healthy"}}, timeout_s=0.5)
    assert time.perf_counter() - started < 2
    assert answer["failing"] == ["hang"] and answer["parts"]["hang"]["error"] == "Timeout"
    assert answer["parts"]["fine"]["status"] == "healthy"


def test_redact() -> None:
    assert health.redact("s3://AKIA:sec@bucket/x and token: abc") == "s3://***@bucket/x and token=***"
    assert len(health.redact("x" * 1000)) == 300

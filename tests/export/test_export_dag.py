"""The ``export`` DAG end to end: real PostgreSQL, files in a local folder and in S3 (moto over real HTTP),
signed webhooks over real HTTP to :class:`dev.webhook_receiver.WebhookReceiver`, Slack alerts to the receiver.

Data is seeded with SQL into core.documents, enriched.document_features and enriched.entity_mentions for
:data:`DAY`; publication is set in quality.publish_state. The pipeline clock (``PULSE_NOW``) is the day after
:data:`DAY`, so a run without params exports :data:`DAY` ("the day before the run").
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from dev.webhook_receiver import WebhookReceiver
from pulse.export.run import (
    MARTS,
    ExportRunError,
    RetryPolicy,
    load_subscribers_with_retries,
    parse_day,
    plan_days,
    select_marts,
)
from pulse.export.webhooks import event_body, verify_signature
from pulse.export.writers import read_manifest, verify_export
from tests.conftest import audit_hours, dag_test, set_connection, truncate_warehouse

pytestmark = pytest.mark.e2e

DAY = date(2026, 11, 27)
MIDNIGHT = datetime(2026, 11, 28, tzinfo=UTC)  # the end of DAY
SECRET = "export-test-secret"
FORMATS = ("csv", "jsonl", "parquet")
MART_NAMES = [m.name for m in MARTS]


# --- seeding ----------------------------------------------------------------------------------------------


def seed(db: Any, source: str, n: int, day: date = DAY, prefix: str = "d", enriched: bool = True) -> None:
    """``n`` documents of ``source`` on ``day``, each enriched (sentiment) and mentioning one entity.

    Sentiments alternate 0.5 / -0.25: with even counts per group every mean is exact in a float32 (``real``),
    so the view's values and the files' compare exactly.
    """
    base = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    for i in range(n):
        ext, created = f"{prefix}{source}{i}", base + timedelta(minutes=7 * i)
        db.execute(
            "INSERT INTO core.documents (source, external_id, kind, created_at, author_pseudonym, content_sha256,"
            " raw_response_id, dag_run_id, loaded_at) VALUES (%s, %s, 'post', %s, 'p', 'h', 1, 'r', %s)",
            (source, ext, created, created + timedelta(minutes=3)),
        )
        if not enriched:
            continue
        vader, label = (0.5, "positive") if i % 2 == 0 else (-0.25, "negative")
        db.execute(
            "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
            " sentiment_vader, sentiment_label, topic) VALUES (%s, %s, %s, 'v1', %s, %s, %s)",
            (source, ext, created, vader, label, "markets" if i % 3 else None),
        )
        db.execute(
            "INSERT INTO enriched.entity_mentions (source, external_id, created_at, enrichment_version,"
            " entity_type, text, normalized, start_offset, end_offset, sentiment)"
            " VALUES (%s, %s, %s, 'v1', 'organisation', 'ACME, \"Inc\"', 'ACME, \"Inc\"', 0, 10, %s)",
            (source, ext, created, vader),
        )


def publish(db: Any, **until: datetime) -> None:
    for source, horizon in until.items():
        db.execute(
            "INSERT INTO quality.publish_state (source, published_until, dag_run_id) VALUES (%s, %s, 'tests')"
            " ON CONFLICT (source) DO UPDATE SET published_until = EXCLUDED.published_until",
            (source, horizon),
        )
    audit_hours(db, list(until))


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    rec = WebhookReceiver(SECRET).start()
    yield rec
    rec.stop()


def subscribers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, Any]]) -> None:
    import yaml

    path = tmp_path / "subscribers.yaml"
    path.write_text(yaml.safe_dump(entries))
    monkeypatch.setenv("PULSE_EXPORT_SUBSCRIBERS", str(path))


def point(conn_id: str, rec: WebhookReceiver, secret: str = SECRET) -> None:
    set_connection(conn_id, {"conn_type": "http", "host": f"{rec.url}/hooks/pulse", "password": secret})


@pytest.fixture
def env(
    warehouse: Any,
    db: Any,
    slack: Any,
    airflow_db: None,
    receiver: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """A clean warehouse, the local subscriber (fast retries) on the receiver, exports to a local folder."""
    truncate_warehouse(db)
    slack.clear()
    point("webhook_local", receiver)
    subscribers(
        tmp_path,
        monkeypatch,
        [{"name": "local", "conn_id": "webhook_local", "marts": "*", "max_attempts": 3, "backoff_s": 0.01}],
    )
    monkeypatch.setenv("PULSE_EXPORT_URL", f"file://{tmp_path}/exports")
    monkeypatch.delenv("PULSE_EXPORT_CONN_ID", raising=False)
    monkeypatch.setenv("PULSE_NOW", "2026-11-28T12:05:00+00:00")
    yield db
    truncate_warehouse(db)
    for conn_id in ("webhook_local", "webhook_partner"):  # set_connection writes os.environ directly
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


@pytest.fixture(params=["local", "s3"])
def dest(request: pytest.FixtureRequest, env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The export root as ``PULSE_EXPORT_URL`` points at it: a local folder, or a fresh S3 prefix."""
    from airflow.sdk import ObjectStoragePath

    if request.param == "local":
        return ObjectStoragePath(f"file://{tmp_path}/exports")
    s3 = request.getfixturevalue("s3")
    url = f"s3://{s3['bucket']}/exports-{uuid4().hex[:8]}"
    monkeypatch.setenv("PULSE_EXPORT_URL", url)
    monkeypatch.setenv("PULSE_EXPORT_CONN_ID", s3["conn_id"])
    return ObjectStoragePath(url, conn_id=s3["conn_id"])


def run(dagbag: Any, **conf: Any) -> Any:
    return dag_test(dagbag.dags["export"], run_conf=conf or None)


def summary(dr: Any) -> dict[str, Any]:
    """The export task's return value (XCom) of run ``dr``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dr.run_id, dag_ids="export", task_ids="export_marts", key="return_value"
            )
        ).first()
        assert row is not None, "the export task returned nothing"
        return dict(XComModel.deserialize_value(row))


def objects(root: Any) -> list[str]:
    """Every object under ``root``, relative to it."""
    base = str(root.path).rstrip("/")
    return sorted(p[len(base) + 1 :] for p in root.fs.find(base))


def view_rows(db: Any, mart: str, day: date = DAY) -> list[dict[str, Any]]:
    cur = db.execute(f"SELECT * FROM analytics.{mart} WHERE day = %s", (day,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(as_text(row[k])) for k in sorted(row))


def as_text(value: Any) -> Any:
    """A view value as the CSV / JSON Lines files write it (docs/exports.md)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- tests ------------------------------------------------------------------------------------------------


def test_a_published_day_is_exported_in_three_formats_read_back_and_notified(
    env: Any, dest: Any, dagbag: Any, receiver: WebhookReceiver, slack: Any
) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    db = env
    seed(db, "reddit", 4)
    seed(db, "x", 2)
    publish(db, reddit=MIDNIGHT, x=MIDNIGHT + timedelta(hours=6))

    dr = run(dagbag)
    assert dr.state == "success"
    out = summary(dr)
    assert out["days_exported"] == ["2026-11-27"] and out["skipped"] == [] and out["mode"] == "scheduled"
    assert out["deliveries"] == {"ok": 3, "failed": 0, "not_attempted": 0}
    assert sorted(objects(dest)) == sorted(
        f"{m}/day=2026-11-27/{f}"
        for m in MART_NAMES
        for f in [*(f"{m}.{x}" for x in FORMATS), "manifest.json"]
    )

    for mart in MART_NAMES:
        folder = dest / mart / "day=2026-11-27"
        expected = sorted(view_rows(db, mart), key=_key)
        assert expected, f"{mart}: the seed gives the view rows"
        manifest = read_manifest(folder / "manifest.json")
        assert verify_export(folder / "manifest.json") == []
        assert manifest["rows"] == len(expected) and manifest["dag_run_id"] == dr.run_id
        assert manifest["published_until"] == {"reddit": "2026-11-28T00:00:00Z", "x": "2026-11-28T06:00:00Z"}
        with (folder / f"{mart}.parquet").open("rb") as fh:
            parquet = pq.read_table(fh).to_pylist()
        assert sorted(parquet, key=_key) == expected
        textual = sorted(({k: as_text(v) for k, v in r.items()} for r in expected), key=_key)
        csv = pd.read_csv(
            io.BytesIO((folder / f"{mart}.csv").read_bytes()), keep_default_na=False, na_values=[""]
        )
        csv_rows = [
            {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in csv.to_dict(orient="records")
        ]
        assert sorted(csv_rows, key=_key) == textual
        jsonl = pd.read_json(
            io.BytesIO((folder / f"{mart}.jsonl").read_bytes()), lines=True, dtype=False, convert_dates=False
        )
        jsonl_rows = [
            {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in jsonl.to_dict(orient="records")
        ]
        assert sorted(jsonl_rows, key=_key) == textual

    books = db.execute("SELECT mart, day, rows, manifest_path, dag_run_id, files FROM ops.exports").fetchall()
    assert sorted((m, d, n) for m, d, n, *_ in books) == sorted(
        (m, DAY, len(view_rows(db, m))) for m in MART_NAMES
    )
    for mart, _d, _n, manifest_path, run_id, files in books:
        assert run_id == dr.run_id and "@" not in manifest_path  # a plain URL, no connection id
        assert manifest_path.endswith(f"/{mart}/day=2026-11-27/manifest.json")
        assert [f["format"] for f in files] == list(FORMATS)

    # One signed delivery per (mart, day); the receiver verified each signature, and so do we.
    assert receiver.rejected == 0 and receiver.received == 3
    got = receiver.deliveries
    assert sorted((d["body"]["mart"], d["body"]["day"]) for d in got) == [
        (m, "2026-11-27") for m in sorted(MART_NAMES)
    ]
    for d in got:
        headers = d["headers"]
        assert verify_signature(SECRET, headers, event_body(d["body"]), now=int(headers["X-Pulse-Timestamp"]))
        assert not verify_signature(
            "another-secret", headers, event_body(d["body"]), now=int(headers["X-Pulse-Timestamp"])
        )
        assert d["body"]["manifest"].endswith(f"/{d['body']['mart']}/day=2026-11-27/manifest.json")
    rows = db.execute("SELECT subscriber, ok, attempts, status FROM ops.webhook_deliveries").fetchall()
    assert sorted(rows) == [("local", True, 1, 200)] * 3
    assert slack.texts("failures") == []


def test_rerun_of_a_day_overwrites_the_same_paths_and_the_books(
    env: Any, dest: Any, dagbag: Any, receiver: WebhookReceiver
) -> None:
    import pyarrow.parquet as pq

    db = env
    seed(db, "reddit", 3)
    publish(db, reddit=MIDNIGHT)
    first = run(dagbag)
    assert first.state == "success"
    before = objects(dest)
    assert len(before) == 12
    row1 = db.execute("SELECT exported_at FROM ops.exports WHERE mart = 'daily_volume'").fetchone()

    seed(db, "reddit", 2, prefix="late", enriched=False)  # a late load into the day: daily_volume changes
    second = run(dagbag, day="2026-11-27")
    assert second.state == "success"
    assert summary(second)["mode"] == "day"
    assert objects(dest) == before  # the same objects, overwritten: no second copy
    with (dest / "daily_volume" / "day=2026-11-27" / "daily_volume.parquet").open("rb") as fh:
        assert pq.read_table(fh).column("items").to_pylist() == [5]
    assert (
        read_manifest(dest / "daily_volume" / "day=2026-11-27" / "manifest.json")["dag_run_id"]
        == second.run_id
    )
    books = db.execute("SELECT mart, rows, dag_run_id, exported_at FROM ops.exports ORDER BY mart").fetchall()
    assert len(books) == 3 and {b[2] for b in books} == {second.run_id}
    assert next(b for b in books if b[0] == "daily_volume")[3] > row1[0]
    # Changed data: a new delivery; unchanged marts: the same delivery id again (the receiver dedupes it).
    assert receiver.received == 6 and receiver.redeliveries == 2 and len(receiver.deliveries) == 4


def test_scheduled_runs_continue_after_the_last_export_and_stop_at_the_publication_horizon(
    env: Any, dagbag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = env
    for i in range(4):
        seed(db, "reddit", 2, day=DAY + timedelta(days=i))
    publish(db, reddit=MIDNIGHT)
    assert run(dagbag, marts=["daily_volume"]).state == "success"  # exports DAY only
    # Three days later, published through DAY + 1 only: DAY + 1 is exported, DAY + 2 waits.
    monkeypatch.setenv("PULSE_NOW", "2026-11-30T12:00:00+00:00")
    publish(db, reddit=MIDNIGHT + timedelta(days=1, hours=5))
    dr = run(dagbag, marts=["daily_volume"])
    assert dr.state == "success"
    out = summary(dr)
    assert out["days_exported"] == ["2026-11-28"]
    assert out["skipped"] == [
        {
            "day": "2026-11-29",
            "marts": ["daily_volume"],
            "reason": "not fully published: reddit until 2026-11-29T05:00:00Z (needs 2026-11-30T00:00:00Z for every source)",
        }
    ]
    days = [r[0] for r in db.execute("SELECT day FROM ops.exports ORDER BY day").fetchall()]
    assert days == [DAY, DAY + timedelta(days=1)]
    assert sorted(p.name for p in (tmp_path / "exports" / "daily_volume").iterdir()) == [
        "day=2026-11-27",
        "day=2026-11-28",
    ]


def test_plan_days_budget_and_first_run() -> None:
    published = {"reddit": datetime(2026, 12, 31, tzinfo=UTC)}
    today = date(2026, 12, 20)
    # Never exported: the day before the run.
    assert plan_days(None, published, today) == ([date(2026, 12, 19)], [], 0)
    # A long backlog: seven days per run, oldest first, the rest deferred.
    ready, waiting, deferred = plan_days(date(2026, 12, 1), published, today)
    assert ready == [date(2026, 12, d) for d in range(2, 9)] and waiting == [] and deferred == 11
    # Up to date: nothing. Nothing published: every due day waits.
    assert plan_days(date(2026, 12, 19), published, today) == ([], [], 0)
    assert plan_days(date(2026, 12, 17), {}, today) == ([], [date(2026, 12, 18), date(2026, 12, 19)], 0)


def test_an_unpublished_day_is_skipped_when_scheduled_and_fails_when_asked_for(
    env: Any, dagbag: Any, receiver: WebhookReceiver, slack: Any, tmp_path: Path
) -> None:
    db = env
    seed(db, "reddit", 3)
    seed(db, "x", 3)
    publish(db, reddit=MIDNIGHT, x=MIDNIGHT - timedelta(hours=6))  # x still holds back 18:00-24:00

    dr = run(dagbag)
    assert dr.state == "success"
    out = summary(dr)
    assert out["exported"] == [] and out["deliveries"] == {"ok": 0, "failed": 0, "not_attempted": 0}
    assert out["skipped"] == [
        {
            "day": "2026-11-27",
            "marts": MART_NAMES,
            "reason": "not fully published: x until 2026-11-27T18:00:00Z (needs 2026-11-28T00:00:00Z for every source)",
        }
    ]
    assert db.execute("SELECT count(*) FROM ops.exports").fetchone()[0] == 0
    assert not (tmp_path / "exports").exists() and receiver.received == 0

    dr = run(dagbag, day="2026-11-27")
    assert dr.state == "failed"
    [failed] = [t for t in slack.texts("failures") if "Task failed" in t]
    assert "`export.export_marts` after 1 tries" in failed  # AirflowFailException: no retries
    assert "day 2026-11-27 cannot be exported: not fully published: x until 2026-11-27T18:00:00Z" in failed
    assert db.execute("SELECT count(*) FROM ops.exports").fetchone()[0] == 0
    assert not (tmp_path / "exports").exists()


def test_without_an_export_location_the_run_fails_naming_the_variable(
    env: Any, dagbag: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSE_EXPORT_URL")
    seed(env, "reddit", 1)
    publish(env, reddit=MIDNIGHT)
    assert run(dagbag).state == "failed"
    [failed] = [t for t in slack.texts("failures") if "Task failed" in t]
    assert "set PULSE_EXPORT_URL to the export location" in failed and "after 1 tries" in failed


def test_a_subscriber_that_keeps_failing_is_reported_once_and_the_export_succeeds(
    env: Any,
    dagbag: Any,
    receiver: WebhookReceiver,
    slack: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = env
    partner = WebhookReceiver("partner-secret").start()
    try:
        point("webhook_partner", partner, "partner-secret")
        subscribers(
            tmp_path,
            monkeypatch,
            [
                {
                    "name": "local",
                    "conn_id": "webhook_local",
                    "marts": "*",
                    "max_attempts": 3,
                    "backoff_s": 0.01,
                },
                {
                    "name": "partner",
                    "conn_id": "webhook_partner",
                    "marts": ["daily_volume", "daily_sentiment"],
                },
            ],
        )
        receiver.fail_always(500)
        seed(db, "reddit", 2)
        publish(db, reddit=MIDNIGHT)

        dr = run(dagbag)
        assert dr.state == "success"
        out = summary(dr)
        assert out["failing_subscribers"] == {"local": "HTTP 500"}
        assert out["deliveries"] == {"ok": 2, "failed": 1, "not_attempted": 2}
        assert receiver.received == 3  # bounded: max_attempts of its entry, then not tried again this run
        assert len(partner.deliveries) == 2 and partner.rejected == 0  # the other subscriber is unaffected
        assert db.execute("SELECT count(*) FROM ops.exports").fetchone()[0] == 3
        assert len(list((tmp_path / "exports").rglob("manifest.json"))) == 3
        rows = db.execute(
            "SELECT subscriber, mart, ok, attempts, status, permanent FROM ops.webhook_deliveries"
            " WHERE subscriber = 'local' ORDER BY id"
        ).fetchall()
        assert rows == [
            ("local", "daily_volume", False, 3, 500, False),
            ("local", "daily_sentiment", False, 0, None, False),
            ("local", "entity_mentions_daily", False, 0, None, False),
        ]
        [alert] = slack.texts("failures")
        assert "Export webhook failing" in alert and "`local`" in alert and "HTTP 500" in alert
        assert "*Attempts*: 3 of 3" in alert and "*Consecutive failed deliveries*: 1" in alert
        assert "daily_volume 2026-11-27" in alert and "/daily_volume/day=2026-11-27/manifest.json" in alert

        # It keeps failing on the next run: reported again with the streak.
        slack.clear()
        assert run(dagbag, day="2026-11-27", marts=["daily_volume"]).state == "success"
        [alert] = slack.texts("failures")
        assert "*Consecutive failed deliveries*: 2" in alert
    finally:
        partner.stop()


def test_a_subscriber_refusing_the_signature_gets_one_attempt(
    env: Any, dagbag: Any, receiver: WebhookReceiver, slack: Any
) -> None:
    db = env
    point("webhook_local", receiver, "a-wrong-secret")  # the receiver verifies with SECRET: 401
    seed(db, "reddit", 2)
    publish(db, reddit=MIDNIGHT)
    dr = run(dagbag, marts=["daily_sentiment"])
    assert dr.state == "success"
    assert receiver.received == 1 and receiver.rejected == 1
    row = db.execute("SELECT ok, attempts, status, permanent, error FROM ops.webhook_deliveries").fetchall()
    assert len(row) == 1 and row[0][:4] == (False, 1, 401, True) and "signature" in row[0][4]
    [alert] = slack.texts("failures")
    assert "`local`" in alert and "HTTP 401" in alert and "*Attempts*: 1 of 3, permanent" in alert


def test_subscriber_retry_settings_and_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setenv(
        "AIRFLOW_CONN_WEBHOOK_UNIT",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/hook", "password": "s"}),
    )
    path = tmp_path / "subs.yaml"

    def write(entries: list[dict[str, Any]]) -> Path:
        path.write_text(yaml.safe_dump(entries))
        return path

    subs, policies = load_subscribers_with_retries(
        write(
            [
                {"name": "a", "conn_id": "webhook_unit", "marts": "*", "max_attempts": 2, "backoff_s": 0.5},
                {"name": "b", "conn_id": "webhook_unit", "marts": ["daily_volume"]},
            ]
        )
    )
    assert [s.name for s in subs] == ["a", "b"] and subs[0].url == "http://127.0.0.1:9/hook"
    assert policies == {"a": RetryPolicy(2, 0.5), "b": RetryPolicy(5, 2.0)}
    with pytest.raises(ExportRunError, match=r"subs\.yaml: subscriber #1 \(a\): max_attempts must be"):
        load_subscribers_with_retries(
            write([{"name": "a", "conn_id": "webhook_unit", "marts": "*", "max_attempts": 0}])
        )
    # Errors name the real file.
    with pytest.raises(ExportRunError, match=rf"^{path}: subscriber #1: unknown keys \['url'\]"):
        load_subscribers_with_retries(
            write([{"name": "a", "conn_id": "webhook_unit", "marts": "*", "url": "x"}])
        )
    with pytest.raises(ExportRunError, match="webhook_nowhere"):
        load_subscribers_with_retries(write([{"name": "a", "conn_id": "webhook_nowhere", "marts": "*"}]))
    with pytest.raises(ExportRunError, match="unknown mart"):
        select_marts(["daily_volume", "nope"])
    assert [m.name for m in select_marts("daily_sentiment, daily_volume")] == [
        "daily_volume",
        "daily_sentiment",
    ]
    with pytest.raises(ExportRunError, match="YYYY-MM-DD"):
        parse_day("27/11/2026")

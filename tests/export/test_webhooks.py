"""Signed webhooks: signatures, subscribers, and deliveries over real HTTP to the local receiver.

No mock of requests: every delivery goes over a loopback socket to ``dev.webhook_receiver``, whose switches
make it answer 500, 429 with ``Retry-After``, refuse the signature (401), or stall until the sender's timeout
fires. Only the waits between attempts are recorded instead of slept (``sleep=``), so backoff is checked
exactly and the tests stay fast.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.webhook_receiver import WebhookReceiver
from pulse.export.webhooks import (
    Subscriber,
    backoff_delay,
    deliver,
    deliver_all,
    delivery_id,
    event_body,
    export_event,
    export_id,
    load_subscribers,
    sign,
    signature_problem,
    storage_url,
    verify_signature,
)
from pulse.export.writers import ExportFile, ExportResult

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec-test-7d1f"  # a test value, not a real secret
EVENT = {
    "event": "export.completed",
    "mart": "daily_volume",
    "day": "2026-11-27",
    "rows": 3,
    "note": "Zürich",
}


class Sleeps(list[float]):
    """Stands in for time.sleep: records the waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    rec = WebhookReceiver(SECRET).start()
    yield rec
    rec.stop()


@pytest.fixture
def partner(receiver: WebhookReceiver) -> Subscriber:
    return Subscriber("partner-a", f"{receiver.url}/hooks/pulse", SECRET, frozenset({"*"}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"X-Pulse-Timestamp": str(timestamp), "X-Pulse-Signature": sign(secret, timestamp, body)}


# --- signatures -------------------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign("k", 1700000000, body) == f"sha256={expected}"


def test_verify_signature_accepts_fresh_and_refuses_tampered_wrong_or_stale() -> None:
    body = event_body(EVENT)
    ts = 1_800_000_000
    headers = _signed_headers(SECRET, ts, body)
    assert verify_signature(SECRET, headers, body, now=ts + 10)
    assert verify_signature(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=ts)  # any case
    assert verify_signature(SECRET, headers, body, now=ts + 299)
    assert not verify_signature(SECRET, headers, body.replace(b'"rows":3', b'"rows":4'), now=ts)
    assert not verify_signature("another-secret", headers, body, now=ts)
    assert not verify_signature(SECRET, headers, body, now=ts + 301)  # replayed later
    assert not verify_signature(SECRET, headers, body, now=ts - 301)  # from the future
    assert not verify_signature(SECRET, headers, body, now=ts + 10, tolerance_s=5)
    assert not verify_signature(SECRET, {**headers, "X-Pulse-Timestamp": str(ts + 1)}, body, now=ts)
    assert signature_problem(SECRET, {}, body) == "missing signature or timestamp header"
    assert signature_problem(SECRET, {**headers, "X-Pulse-Timestamp": "soon"}, body) == "malformed timestamp"
    assert (signature_problem(SECRET, headers, body, now=ts + 301) or "").startswith("stale timestamp")
    assert signature_problem(SECRET, headers, b"{}", now=ts) == "signature does not match"
    unprefixed = {**headers, "X-Pulse-Signature": headers["X-Pulse-Signature"].removeprefix("sha256=")}
    assert not verify_signature(SECRET, unprefixed, body, now=ts)


def test_event_body_is_compact_sorted_ascii_json() -> None:
    body = event_body({"b": 1, "a": [1, 2], "day": date(2026, 11, 27), "text": "Zürich"})
    assert body == b'{"a":[1,2],"b":1,"day":"2026-11-27","text":"Z\\u00fcrich"}'


# --- delivery ---------------------------------------------------------------------------------------------


def test_deliver_posts_a_signed_event_once(receiver: WebhookReceiver, partner: Subscriber) -> None:
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-1", sleep=sleeps)
    assert (result.ok, result.attempts, result.status, result.error, result.permanent) == (
        True,
        1,
        200,
        None,
        False,
    )
    assert result.subscriber == "partner-a" and result.delivery_id == "d-1"
    assert sleeps == []
    [got] = receiver.deliveries
    assert got["path"] == "/hooks/pulse"
    assert got["body"] == EVENT
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("pulse-export")
    assert headers["x-pulse-event"] == "export.completed"
    assert headers["x-pulse-delivery"] == "d-1"
    assert abs(int(headers["x-pulse-timestamp"]) - time.time()) < 300
    assert verify_signature(SECRET, headers, event_body(EVENT))


def test_server_errors_are_retried_with_growing_backoff(
    receiver: WebhookReceiver, partner: Subscriber
) -> None:
    receiver.fail_next(2, 500)
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-2", backoff_s=2.0, sleep=sleeps)
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert receiver.received == 3 and len(receiver.deliveries) == 1
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] < 2.0 <= sleeps[1] < 4.0  # exponential with equal jitter


def test_429_waits_as_long_as_retry_after_says_capped(receiver: WebhookReceiver, partner: Subscriber) -> None:
    receiver.fail_next(1, 429, retry_after=7)
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-3", sleep=sleeps)
    assert (result.ok, result.attempts) == (True, 2)
    assert sleeps == [7.0]

    receiver.fail_next(1, 429, retry_after=600)
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-4", max_backoff_s=10.0, sleep=sleeps)
    assert result.ok and sleeps == [10.0]


def test_refused_signature_is_permanent_after_one_attempt(receiver: WebhookReceiver) -> None:
    wrong = Subscriber("partner-b", receiver.url, "not-the-receivers-secret", frozenset({"*"}))
    sleeps = Sleeps()
    result = deliver(wrong, EVENT, delivery_id="d-5", sleep=sleeps)
    assert (result.ok, result.attempts, result.status, result.permanent) == (False, 1, 401, True)
    assert result.error == "HTTP 401: signature refused: signature does not match"
    assert sleeps == [] and receiver.received == 1 and receiver.rejected == 1
    assert receiver.deliveries == []


@pytest.mark.parametrize("status", [400, 404, 410, 301])
def test_other_client_errors_and_redirects_are_permanent(
    receiver: WebhookReceiver, partner: Subscriber, status: int
) -> None:
    receiver.fail_next(1, status)
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-6", sleep=sleeps)
    assert (result.ok, result.attempts, result.status, result.permanent) == (False, 1, status, True)
    assert sleeps == [] and receiver.received == 1


def test_a_subscriber_that_keeps_failing_is_given_up_after_max_attempts(
    receiver: WebhookReceiver, partner: Subscriber
) -> None:
    receiver.fail_always(503)
    sleeps = Sleeps()
    result = deliver(
        partner, EVENT, delivery_id="d-7", max_attempts=6, backoff_s=2.0, max_backoff_s=5.0, sleep=sleeps
    )
    assert (result.ok, result.attempts, result.status, result.permanent) == (False, 6, 503, False)
    assert result.error == "HTTP 503: simulated failure"
    assert receiver.received == 6 and receiver.deliveries == []
    assert len(sleeps) == 5  # no wait after the last attempt
    assert sleeps[:2] == sorted(sleeps[:2]) and sleeps[0] < 2.0 <= sleeps[1]
    assert all(2.5 <= s <= 5.0 for s in sleeps[2:])  # capped at max_backoff_s


def test_timeouts_are_retried_then_reported(receiver: WebhookReceiver, partner: Subscriber) -> None:
    receiver.stall_next(2, seconds=30.0)
    sleeps = Sleeps()
    result = deliver(partner, EVENT, delivery_id="d-8", max_attempts=2, timeout_s=0.3, sleep=sleeps)
    assert (result.ok, result.attempts, result.status, result.permanent) == (False, 2, None, False)
    assert "Timeout" in (result.error or "")
    assert len(sleeps) == 1 and receiver.received == 2

    receiver.stall_next(1, seconds=30.0)
    result = deliver(partner, EVENT, delivery_id="d-9", max_attempts=3, timeout_s=0.3, sleep=Sleeps())
    assert (result.ok, result.attempts, result.status) == (True, 2, 200)


def test_connection_refused_is_retried_then_reported() -> None:
    closed = Subscriber("gone", f"http://127.0.0.1:{_free_port()}/hook", SECRET, frozenset({"*"}))
    sleeps = Sleeps()
    result = deliver(closed, EVENT, delivery_id="d-10", max_attempts=3, sleep=sleeps)
    assert (result.ok, result.attempts, result.status, result.permanent) == (False, 3, None, False)
    assert (result.error or "").startswith("ConnectionError")
    assert len(sleeps) == 2


def test_a_redelivery_is_acknowledged_but_recorded_once(
    receiver: WebhookReceiver, partner: Subscriber
) -> None:
    first = deliver(partner, EVENT, delivery_id="same-export", sleep=Sleeps())
    again = deliver(partner, EVENT, delivery_id="same-export", sleep=Sleeps())
    other = deliver(partner, {**EVENT, "rows": 4}, delivery_id="changed-export", sleep=Sleeps())
    assert first.ok and again.ok and other.ok
    assert [d["delivery_id"] for d in receiver.deliveries] == ["same-export", "changed-export"]
    assert receiver.redeliveries == 1 and receiver.received == 3


def test_event_must_name_itself(partner: Subscriber) -> None:
    with pytest.raises(ValueError, match="X-Pulse-Event"):
        deliver(partner, {"mart": "x"}, delivery_id="d-11")


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(a, 2.0, 60.0, rng=lambda: 0.0) for a in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(3, 2.0, 60.0, rng=lambda: 0.999) < 8.0


# --- the receiver itself ----------------------------------------------------------------------------------


def test_receiver_refuses_unsigned_stale_and_tampered_posts(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    body = event_body(EVENT)
    url = f"{receiver.url}/hook"
    unsigned = requests.post(url, data=body, timeout=5)
    assert unsigned.status_code == 401 and "missing signature" in unsigned.text
    old = int(time.time()) - 3600
    stale = requests.post(url, data=body, headers=_signed_headers(SECRET, old, body), timeout=5)
    assert stale.status_code == 401 and "stale timestamp" in stale.text
    now = int(time.time())
    tampered = requests.post(url, data=body + b" ", headers=_signed_headers(SECRET, now, body), timeout=5)
    assert tampered.status_code == 401 and "does not match" in tampered.text
    good = requests.post(
        url, data=body, headers={**_signed_headers(SECRET, now, body), "X-Pulse-Delivery": "r-1"}, timeout=5
    )
    assert good.status_code == 200 and good.json() == {"ok": True, "duplicate": False}
    assert receiver.rejected == 3 and len(receiver.deliveries) == 1
    receiver.clear()
    assert receiver.deliveries == [] and receiver.received == 0


def test_receiver_records_to_a_json_lines_file(tmp_path: Path) -> None:
    out = tmp_path / "hooks" / "deliveries.jsonl"
    rec = WebhookReceiver(SECRET, out=out).start()
    try:
        sub = Subscriber("p", rec.url, SECRET, frozenset({"*"}))
        assert deliver(sub, EVENT, delivery_id="f-1", sleep=Sleeps()).ok
        assert deliver(sub, EVENT, delivery_id="f-1", sleep=Sleeps()).ok
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(d["delivery_id"], d["body"]) for d in lines] == [("f-1", EVENT)]
    finally:
        rec.stop()


def test_receiver_runs_standalone_with_the_secret_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "deliveries.jsonl"
    env = {
        **os.environ,
        "PULSE_TEST_WEBHOOK_SECRET": SECRET,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
    }
    argv = [sys.executable, "-m", "dev.webhook_receiver", "--port", str(port), "--out", str(out)]
    missing = subprocess.run(
        [*argv, "--secret-env", "PULSE_TEST_NO_SUCH_VAR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "PULSE_TEST_NO_SUCH_VAR is not set" in missing.stderr
    proc = subprocess.Popen(
        [*argv, "--secret-env", "PULSE_TEST_WEBHOOK_SECRET"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"webhook receiver listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        sub = Subscriber("p", f"{url}/in", SECRET, frozenset({"*"}))
        control = requests.post(f"{url}/_control", json={"fail_next": 1, "status": 502}, timeout=5)
        assert control.json()["pending_failures"] == 1
        result = deliver(sub, EVENT, delivery_id="s-1", sleep=Sleeps())
        assert (result.ok, result.attempts) == (True, 2)
        state = requests.get(f"{url}/_deliveries", timeout=5).json()
        assert state["received"] == 2 and [d["delivery_id"] for d in state["deliveries"]] == ["s-1"]
        assert json.loads(out.read_text())["body"] == EVENT
        assert SECRET not in " ".join(proc.args)  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- subscribers and events -------------------------------------------------------------------------------


def test_load_subscribers_reads_urls_and_secrets_from_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_FULL",
        json.dumps(
            {"conn_type": "http", "host": "https://partner.example/hooks/pulse?x=1", "password": "s-full"}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_PARTS",
        json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": 8767, "schema": "http", "password": "s-parts"}
        ),
    )
    path = tmp_path / "subscribers.yaml"
    path.write_text(
        "- name: partner-a\n  conn_id: hook_full\n  marts: '*'\n"
        "- name: partner-b\n  conn_id: hook_parts\n  marts: [daily_volume, quality_daily]\n"
    )
    a, b = load_subscribers(path)
    assert (a.name, a.url, a.secret, a.marts) == (
        "partner-a",
        "https://partner.example/hooks/pulse?x=1",
        "s-full",
        {"*"},
    )
    assert (b.name, b.url, b.secret) == ("partner-b", "http://127.0.0.1:8767", "s-parts")
    assert a.wants("anything") and b.wants("daily_volume") and not b.wants("daily_sentiment")
    assert "s-full" not in repr(a)
    (tmp_path / "empty.yaml").write_text("")
    assert load_subscribers(tmp_path / "empty.yaml") == []


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("- name: a\n  conn_id: hook_nopw\n  marts: '*'\n", "no password"),
        ("- name: a\n  conn_id: hook_full\n  marts: []\n", "marts must be"),
        ("- name: a\n  conn_id: hook_full\n  marts: '*'\n  url: http://x\n", "unknown keys \\['url'\\]"),
        (
            "- name: a\n  conn_id: hook_full\n  marts: '*'\n- name: a\n  conn_id: hook_full\n  marts: '*'\n",
            "duplicate",
        ),
        ("name: a\n", "expected a list"),
    ],
)
def test_load_subscribers_refuses_bad_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, message: str
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_FULL",
        json.dumps({"conn_type": "http", "host": "https://p.example", "password": "s"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOOK_NOPW", json.dumps({"conn_type": "http", "host": "https://p.example"})
    )
    path = tmp_path / "subscribers.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ValueError, match=message):
        load_subscribers(path)


def _result(sha: str = "ab" * 32, mart: str = "daily_volume") -> ExportResult:
    folder = f"s3://pulse_s3@pulse-exports/marts/{mart}/day=2026-11-27"
    files = [
        ExportFile("csv", f"{folder}/{mart}.csv", 3, 120, sha),
        ExportFile("parquet", f"{folder}/{mart}.parquet", 3, 900, "cd" * 32),
    ]
    return ExportResult(mart, date(2026, 11, 27), folder, files, f"{folder}/manifest.json", 3)


def test_export_event_ids_are_stable_for_the_same_content(
    receiver: WebhookReceiver, partner: Subscriber
) -> None:
    event = export_event(_result())
    assert event["event"] == "export.completed" and event["rows"] == 3 and event["day"] == "2026-11-27"
    assert event["manifest"] == "s3://pulse-exports/marts/daily_volume/day=2026-11-27/manifest.json"
    assert event["files"][0] == {
        "format": "csv",
        "url": "s3://pulse-exports/marts/daily_volume/day=2026-11-27/daily_volume.csv",
        "rows": 3,
        "bytes": 120,
        "sha256": "ab" * 32,
    }
    assert storage_url("file:///tmp/x/manifest.json") == "file:///tmp/x/manifest.json"
    assert storage_url("s3://bucket/key/a.csv") == "s3://bucket/key/a.csv"
    assert export_id(_result()) == event["export_id"]
    assert export_id(_result(sha="ef" * 32)) != event["export_id"]
    assert delivery_id("partner-a", _result()) == delivery_id("partner-a", _result())
    assert delivery_id("partner-a", _result()) != delivery_id("partner-b", _result())

    narrow = Subscriber("narrow", partner.url, SECRET, frozenset({"quality_daily"}))
    results = deliver_all([partner, narrow], _result(), sleep=Sleeps())
    assert [(r.subscriber, r.ok) for r in results] == [("partner-a", True)]
    [got] = receiver.deliveries
    assert got["body"] == event and got["delivery_id"] == delivery_id("partner-a", _result())


def test_the_verification_snippet_in_the_partner_docs_works() -> None:
    text = (ROOT / "docs" / "exports.md").read_text()
    code = text.split("<!-- verify-snippet")[1].split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify = namespace["verify"]
    body = event_body(EVENT)
    ts = int(time.time())
    headers = {"X-Pulse-Timestamp": str(ts), "X-Pulse-Signature": sign(SECRET, ts, body)}
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert not verify("another-secret", headers, body)
    assert not verify(SECRET, {}, body)
    old = ts - 301
    assert not verify(
        SECRET, {"X-Pulse-Timestamp": str(old), "X-Pulse-Signature": sign(SECRET, old, body)}, body
    )

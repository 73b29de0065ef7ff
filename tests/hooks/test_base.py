"""The paging engine (pulse.hooks.base.SourceHook) on a scripted toy source: no network, no simulator.

Each test scripts the answers of the toy source, records the waits instead of sleeping, and checks what the
engine made of them: backoff and jitter, server-given waits, throttle bodies, the error endings, settings.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cached_property
from typing import Any, Unpack

import pytest

from pulse.hooks.base import HookArgs, Reply, SourceHook, TransientError, Verdict
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.windows import Window

STREAM = Stream(key="toy:all", endpoint="/items", params={"limit": 2})
WINDOW = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC))
SERVER_NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
DATE = format_datetime(SERVER_NOW, usegmt=True)
OK = (200, {}, b'{"items": [1, 2], "next": null}')


class ToyHook(SourceHook):
    """A source whose answers are scripted: (status, headers, body) or an exception, one per request."""

    conn_name_attr = "toy_conn_id"
    default_conn_name = "toy_default"
    conn_type = "pulse_toy"
    hook_name = "Toy"
    source_name = "Toy"
    reset_headers = {"x-reset-epoch": "epoch", "x-reset-in": "seconds"}
    cursor_param = "after"

    def __init__(self, toy_conn_id: str = default_conn_name, **settings: Unpack[HookArgs]) -> None:
        super().__init__(toy_conn_id, **settings)
        self.script: list[Any] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.clients_built = 0

    @cached_property
    def client(self) -> object:
        self.clients_built += 1
        return object()

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        self.client  # noqa: B018
        self.sent.append((path, params))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        return Reply(status, {"Date": DATE, **headers}, body)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        doc = json.loads(reply.body) if reply.body.startswith(b"{") else None
        if not isinstance(doc, dict):
            return Verdict.malformed("body is not JSON")
        if "Note" in doc:
            return Verdict.throttled(f"throttled ({doc['Note']})", first_wait=10.0)
        return Verdict.ok(len(doc["items"]), doc.get("next"))


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Connection ``toy_default`` with deterministic retry extras (tests change ``extra`` and re-set it)."""
    value: dict[str, Any] = {
        "conn_type": "pulse_toy",
        "host": "http://toy.invalid",
        "password": "toy-secret",
        "extra": {"max_attempts": 4, "backoff": 1, "jitter": 0, "max_wait": 60},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TOY_DEFAULT", json.dumps(value))
    return value


def _hook(waits: list[float], *answers: Any, **settings: Any) -> ToyHook:
    hook = ToyHook(sleep=waits.append, **settings)
    hook.script = list(answers)
    return hook


def test_backoff_doubles_per_attempt_and_is_capped(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    page = _hook(waits, (503, {}, b""), (502, {}, b""), (500, {}, b""), OK, max_wait=3).fetch_page(
        STREAM, 0, {}
    )
    assert page.is_valid and page.item_count == 2
    assert waits == [1.0, 2.0, 3.0]


def test_jitter_adds_up_to_its_share_of_each_backoff_wait(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    hook = _hook(waits, *[(503, {}, b"")] * 3, OK, jitter=0.5, max_attempts=4)
    draws = iter([0.0, 1.0, 0.5])
    hook._random = lambda: next(draws)
    hook.fetch_page(STREAM, 0, {})
    assert waits == [1.0, 3.0, 5.0]  # 1*(1+0), 2*(1+0.5), 4*(1+0.25)
    real: list[float] = []
    for _ in range(20):
        _hook(real, (503, {}, b""), OK, jitter=0.5).fetch_page(STREAM, 0, {})
    assert all(1.0 <= w <= 1.5 for w in real) and len(set(real)) > 1, real


def test_retry_after_seconds_is_waited_exactly_without_jitter(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    hook = _hook(waits, (429, {"Retry-After": "7"}, b""), OK, jitter=0.5)
    assert hook.fetch_page(STREAM, 0, {}).is_valid
    assert waits == [7.0]


def test_retry_after_as_an_http_date_is_measured_against_the_servers_date(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    later = format_datetime(datetime(2026, 11, 28, 12, 0, 12, tzinfo=UTC), usegmt=True)
    _hook(waits, (429, {"Retry-After": later}, b""), OK).fetch_page(STREAM, 0, {})
    assert waits == [12.0]


def test_rate_limit_reset_headers_and_the_max_wait_cap(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    epoch = str(int(SERVER_NOW.timestamp()) + 5)
    _hook(waits, (429, {"x-reset-epoch": epoch}, b""), OK).fetch_page(STREAM, 0, {})
    _hook(waits, (429, {"x-reset-in": "9"}, b""), OK).fetch_page(STREAM, 0, {})
    _hook(waits, (429, {"x-reset-in": "3600"}, b""), OK, max_wait=20).fetch_page(STREAM, 0, {})
    _hook(waits, (429, {"Retry-After": "3600"}, b""), OK, max_wait=20).fetch_page(STREAM, 0, {})
    assert waits == [5.0, 9.0, 20.0, 20.0]


def test_a_throttle_without_a_hint_backs_off(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    _hook(waits, (429, {}, b""), (429, {"x-reset-epoch": "1"}, b""), OK).fetch_page(STREAM, 0, {})
    assert waits == [1.0, 2.0]  # no hint, then a reset already past: the backoff


def test_a_throttle_body_with_status_200_is_waited_out(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    note = (200, {}, b'{"Note": "5 calls per minute"}')
    page = _hook(waits, note, note, OK).fetch_page(STREAM, 0, {})
    assert page.is_valid and waits == [10.0, 20.0]  # the hook's own first wait, doubled per throttle
    with pytest.raises(PageFetchError, match=r"/items page 0 failed after 4 attempts: throttled \(5 calls"):
        _hook([], note).fetch_page(STREAM, 0, {})


def test_rejected_credentials_fail_at_once(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    hook = _hook(waits, (401, {}, b"nope"), OK)
    with pytest.raises(
        SourceAuthError, match=r"Toy rejected the credentials of connection 'toy_default' \(HTTP 401"
    ):
        hook.fetch_page(STREAM, 0, {})
    assert len(hook.sent) == 1 and waits == []


def test_another_4xx_is_refused_at_once(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    hook = _hook(waits, (404, {}, b"no such thing"), OK)
    with pytest.raises(PageFetchError, match=r"Toy answered HTTP 404 for /items: no such thing"):
        hook.fetch_page(STREAM, 0, {})
    assert len(hook.sent) == 1 and waits == []


def test_a_page_that_stays_malformed_is_kept_on_the_error(conn: dict[str, Any]) -> None:
    waits: list[float] = []
    hook = _hook(waits, (200, {}, b"<html>1</html>"), (200, {}, b"<html>2</html>"))
    with pytest.raises(
        MalformedPageError, match="/items page 3 stayed malformed after 4 attempts: body is not JSON"
    ) as err:
        hook.fetch_page(STREAM, 3, {"limit": 2})
    page = err.value.page
    assert page is not None and not page.is_valid and page.error == "body is not JSON"
    assert (page.body, page.page_no, page.params, page.status_code) == (
        b"<html>2</html>",
        3,
        {"limit": 2},
        200,
    )
    assert len(hook.sent) == 4 and len(waits) == 3


def test_malformed_then_outlasted_by_5xx_is_a_fetch_error(conn: dict[str, Any]) -> None:
    hook = _hook([], (200, {}, b"<html>"), (503, {}, b""))
    with pytest.raises(PageFetchError, match=r"failed after 4 attempts: HTTP 503") as err:
        hook.fetch_page(STREAM, 0, {})
    assert not isinstance(err.value, MalformedPageError)


def test_network_errors_are_retried_with_the_secret_redacted(
    conn: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    caplog.set_level(logging.WARNING, logger="pulse.hooks.base")
    hook = _hook(waits, TransientError("timed out: GET /items?key=toy-secret"))
    with pytest.raises(PageFetchError, match=r"failed after 4 attempts: network error: timed out") as err:
        hook.fetch_page(STREAM, 0, {})
    assert "toy-secret" not in str(err.value) and "key=***" in str(err.value)
    assert waits == [1.0, 2.0, 4.0]
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 3 and all("network error" in m and "toy-secret" not in m for m in retries)
    assert (
        retries[0] == "toy:all page 0 attempt 1/4: network error: timed out: GET /items?key=***; waiting 1.0s"
    )


def test_throttles_may_have_their_own_budget(conn: dict[str, Any]) -> None:
    class Patient(ToyHook):
        separate_throttle_budget = True

    hook = Patient(sleep=[].append)
    hook.script = [(503, {}, b""), (429, {}, b""), (429, {}, b""), (503, {}, b""), OK]
    assert hook.fetch_page(STREAM, 0, {}).is_valid  # 2 failures + 2 throttles < 4 each
    hook.script = [(429, {"Retry-After": "1"}, b"")]
    with pytest.raises(PageFetchError, match=r"/items page 0 stayed throttled after 4 attempts"):
        hook.fetch_page(STREAM, 0, {})


def test_settings_come_from_explicit_arguments_then_extras_then_defaults(
    conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"max_attempts": "3", "backoff": 0.5, "jitter": 0, "max_wait": 9, "timeout": 4}
    monkeypatch.setenv("AIRFLOW_CONN_TOY_DEFAULT", json.dumps({**conn, "extra": extra}))
    hook = ToyHook(max_attempts=5, jitter=0.1)
    assert (hook.max_attempts, hook.backoff, hook.jitter, hook.max_wait, hook.timeout) == (
        5,
        0.5,
        0.1,
        9.0,
        4.0,
    )
    monkeypatch.setenv("AIRFLOW_CONN_TOY_DEFAULT", json.dumps({**conn, "extra": {}}))
    plain = ToyHook("toy_default")
    assert (plain.max_attempts, plain.backoff, plain.jitter, plain.max_wait, plain.timeout) == (
        6,
        1.0,
        0.25,
        60.0,
        ToyHook.default_timeout,
    )


def test_reading_the_client_does_not_touch_the_settings(
    conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = ToyHook()
    before = hook.settings
    assert hook.clients_built == 0, "settings need no client"
    hook.client  # noqa: B018
    assert hook.settings is before and hook.clients_built == 1
    other = ToyHook()
    other.client  # noqa: B018
    monkeypatch.setenv("AIRFLOW_CONN_TOY_DEFAULT", json.dumps({**conn, "extra": {"max_attempts": 2}}))
    assert other.max_attempts == 2, (
        "the settings are resolved on first use of the settings, not of the client"
    )


def test_iter_pages_follows_the_cursor_until_the_last_page(conn: dict[str, Any]) -> None:
    hook = _hook(
        [],
        (200, {}, b'{"items": [1, 2], "next": "c1"}'),
        (200, {}, b'{"items": [3], "next": "c2"}'),
        (200, {}, b'{"items": [], "next": "c3"}'),
    )
    pages = list(hook.iter_pages(STREAM, WINDOW, cursor="c0", page_no=5))
    assert [(p.page_no, p.item_count, p.next_cursor) for p in pages] == [
        (5, 2, "c1"),
        (6, 1, "c2"),
        (7, 0, None),
    ]
    assert [params for _, params in hook.sent] == [
        {"limit": 2, "after": "c0"},
        {"limit": 2, "after": "c1"},
        {"limit": 2, "after": "c2"},
    ]

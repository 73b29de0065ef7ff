"""The connection form and its Test button on a running stack, over the REST API the UI uses.

An Astro user picks "Reddit (Pulse)" in Admin > Connections, fills the relabelled fields and presses Test. The
UI reads the form from ``GET /ui/connections/hook_meta`` and whether the button is on from ``GET /ui/config``
(``[core] test_connection``, "Enabled" in dev/stack.py), and Test posts the form to
``POST /api/v2/connections/test``, which runs the hook's ``test_connection()`` inside the api-server. This
module starts the whole local stack once (``private_stack``, an empty DAG folder: no DAG is needed) and
makes those calls with each pulse_* type pointed at the stack's simulator, with its credentials and with a
wrong secret. About 60-90 s to start here, a few seconds of checks, 15 s to stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack.conftest import LiveStack, private_stack

pytestmark = pytest.mark.e2e

#: The simulator's credentials per connection type, as the form's fields (dev/stack.py uses the same).
CREDENTIALS: dict[str, dict[str, Any]] = {
    "pulse_reddit": {"login": "sim-client-id", "password": "sim-client-secret"},
    "pulse_x": {"password": "sim-x-bearer-token"},
    "pulse_newsapi": {"password": "sim-newsapi-key"},
    "pulse_alphavantage": {"password": "sim-alphavantage-key"},
    "pulse_openweathermap": {"password": "sim-owm-key"},
    "pulse_github": {"password": "sim-github-token"},
}
WRONG_SECRET = "not-the-secret"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with private_stack("pulse-live-conn-", dags_folder=tmp_path_factory.mktemp("no-dags")) as stack:
        yield stack


def _ui(live: LiveStack, path: str) -> Any:
    resp = live.api.session.get(f"{live.api_url}/ui{path}", timeout=60)
    resp.raise_for_status()
    return resp.json()


def _press_test(live: LiveStack, conn_type: str, **fields: Any) -> dict[str, Any]:
    """What the Test button posts for a new connection filled in the form."""
    extra = {"timeout": 5, "max_attempts": 2, "backoff": 0.1}
    if conn_type == "pulse_reddit":
        extra["user_agent"] = "pulse-live-tests/0.1"
    body = {
        "connection_id": f"form_{conn_type}",
        "conn_type": conn_type,
        "host": live.sim_url,
        "extra": json.dumps(extra),
        **fields,
    }
    resp = live.api.session.post(f"{live.api_url}/api/v2/connections/test", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_ui_shows_the_test_button(live: LiveStack) -> None:
    assert _ui(live, "/config")["test_connection"] == "Enabled"


def test_the_connection_form_knows_the_pulse_types(live: LiveStack) -> None:
    meta = {m["connection_type"]: m for m in _ui(live, "/connections/hook_meta")}
    assert set(CREDENTIALS) <= set(meta)
    reddit = meta["pulse_reddit"]
    assert reddit["hook_name"] == "Reddit (Pulse)"
    assert reddit["hook_class_name"] == "pulse.hooks.reddit.RedditHook"
    fields = reddit["standard_fields"]
    assert fields["login"]["title"] == "Client ID"
    assert fields["password"]["title"] == "Client secret"
    assert fields["port"]["hidden"] is True and fields["url_schema"]["hidden"] is True
    assert reddit["extra_fields"]["user_agent"]["schema"]["title"] == "User agent"
    assert meta["pulse_alphavantage"]["standard_fields"]["password"]["title"] == "API key"


@pytest.mark.parametrize("conn_type", sorted(CREDENTIALS))
def test_test_button_accepts_the_simulators_credentials(live: LiveStack, conn_type: str) -> None:
    result = _press_test(live, conn_type, **CREDENTIALS[conn_type])
    assert result["status"] is True, result
    assert result["message"].startswith("Connection successfully tested")  # GitHub adds its rate limit


@pytest.mark.parametrize("conn_type", sorted(CREDENTIALS))
def test_test_button_reports_a_wrong_secret(live: LiveStack, conn_type: str) -> None:
    result = _press_test(live, conn_type, **{**CREDENTIALS[conn_type], "password": WRONG_SECRET})
    assert result["status"] is False
    assert result["message"] and WRONG_SECRET not in result["message"]

"""Pulse as an Airflow provider: the six hooks are connection types Airflow discovers, with a form and a Test.

What Airflow 3.3 reads (``airflow/providers_manager.py``): the ``apache_airflow_provider`` entry point of every
installed distribution (``make install`` installs the project editable), the provider info validated against
``provider_info.schema.json``, ``connection-types`` for the hook classes, and ``hook-name`` / ``ui-field-behaviour``
/ ``conn-fields`` for the UI's connection form (``GET /ui/connections/hook_meta``, built without importing a
hook). The Test button (``POST /api/v2/connections/test``) builds a ``Connection``, exports it as
``AIRFLOW_CONN_<random id>`` in URI form and calls ``Connection.test_connection()``, which finds the hook class
through ``ProvidersManager().hooks[conn_type]``.

Airflow's discovery runs in a fresh interpreter (one subprocess for the module), so no ProvidersManager
singleton of this test session matters. The live REST round trip is in tests/stack/test_live_connections.py.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tomllib
from importlib import import_module, metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pulse.provider import CONNECTION_TYPES, PACKAGE_NAME, get_provider_info, ui_field_behaviour

ROOT = Path(__file__).resolve().parents[2]

#: connection type -> (hook class, name in the UI's connection type list), written out independently of
#: pulse/provider.py so that a slip there shows.
EXPECTED = {
    "pulse_reddit": ("pulse.hooks.reddit.RedditHook", "Reddit (Pulse)"),
    "pulse_x": ("pulse.hooks.x.XHook", "X (Pulse)"),
    "pulse_newsapi": ("pulse.hooks.newsapi.NewsApiHook", "NewsAPI (Pulse)"),
    "pulse_alphavantage": ("pulse.hooks.alphavantage.AlphaVantageHook", "Alpha Vantage (Pulse)"),
    "pulse_openweathermap": ("pulse.hooks.openweathermap.OpenWeatherMapHook", "OpenWeatherMap (Pulse)"),
    "pulse_github": ("pulse.hooks.github.GithubSourceHook", "GitHub (Pulse)"),
}

#: The standard fields each form relabels: the secret always goes in the password field.
SECRET_LABELS = {
    "pulse_reddit": "Client secret",
    "pulse_x": "Bearer token",
    "pulse_newsapi": "API key",
    "pulse_alphavantage": "API key",
    "pulse_openweathermap": "API key",
    "pulse_github": "Token",
}

# Runs in a fresh interpreter: Airflow's discovery, the UI's form data, and the Test button's code path for
# a pulse_reddit connection pointed at the test simulator (a good and a wrong secret).
_PROBE = r"""
import json, os, sys, warnings
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from airflow.models.connection import Connection
from airflow.providers_manager import ProvidersManager

pm = ProvidersManager()
out = {"provider": pm.providers["pulse"].data, "version": pm.providers["pulse"].version}
# What the UI's connection form gets, exactly (hook classes not imported yet).
out["hook_meta"] = {
    m.connection_type: m.model_dump(mode="json")
    for m in HookMetaService.hook_meta_data()
    if m.connection_type.startswith("pulse_")
}
out["widgets"] = sorted(k for k in pm._connection_form_widgets_from_metadata if "__pulse_" in k)
out["imported_before_test"] = sorted(m for m in sys.modules if m.startswith("pulse.hooks."))


def test(secret):
    # What POST /api/v2/connections/test does with the form's values.
    conn = Connection(conn_id="probe_reddit", conn_type="pulse_reddit", host=os.environ["SIM_URL"],
                      login="sim-client-id", password=secret,
                      extra=json.dumps({"user_agent": "pulse-tests/0.1", "timeout": 5, "max_attempts": 2,
                                        "backoff": 0.1}))
    os.environ["AIRFLOW_CONN_PROBE_REDDIT"] = conn.get_uri()
    try:
        return list(conn.test_connection())
    finally:
        del os.environ["AIRFLOW_CONN_PROBE_REDDIT"]


out["test_good"] = test("sim-client-secret")
out["test_bad"] = test("not-the-secret")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    hooks = pm.hooks
    out["hooks"] = {t: hooks[t]._asdict() if hooks[t] else None for t in hooks if t.startswith("pulse_")}
# Every loaded module whose file lies in plugins/pulse, by name: one name per file.
out["pulse_modules"] = sorted([n, m.__file__] for n, m in list(sys.modules.items())
                              if "/plugins/pulse/" in (getattr(m, "__file__", None) or ""))
print("PROBE" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def discovered(simulator: Any) -> dict[str, Any]:
    """What a fresh Airflow process discovers (one subprocess for the module)."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
        "SIM_URL": simulator.url,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    res = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd="/", env=env, capture_output=True, text=True, timeout=240
    )
    lines = [line for line in res.stdout.splitlines() if line.startswith("PROBE")]
    assert res.returncode == 0 and lines, f"probe failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    data: dict[str, Any] = json.loads(lines[-1][len("PROBE") :])
    data["log"] = res.stdout + res.stderr  # Airflow's structlog writes warnings to stdout
    return data


def _hook_class(conn_type: str) -> type:
    module, _, name = EXPECTED[conn_type][0].rpartition(".")
    return getattr(import_module(module), name)


# ---------------------------------------------------------------------------------------- the provider info


def test_provider_info_is_valid_for_airflow() -> None:
    info = get_provider_info()
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    behaviour_schema = json.loads(
        files("airflow").joinpath("customized_form_field_behaviours.schema.json").read_text()
    )
    for entry in info["connection-types"]:
        jsonschema.validate(ui_field_behaviour(entry["connection-type"]), behaviour_schema)
        for name, field in entry["conn-fields"].items():
            assert field["label"] and field["description"], name
            assert "null" in field["schema"]["type"], f"{name}: every extra is optional"
    # Airflow refuses a provider whose package-name is not the distribution's (canonical) name.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert info["package-name"] == PACKAGE_NAME == project["name"]
    assert info["versions"] == [project["version"]]


def test_the_six_connection_types_name_their_hooks() -> None:
    declared = {e["connection-type"]: (e["hook-class-name"], e["hook-name"]) for e in CONNECTION_TYPES}
    assert declared == EXPECTED
    for entry in CONNECTION_TYPES:
        behaviour = entry["ui-field-behaviour"]
        conn_type = entry["connection-type"]
        assert behaviour["relabeling"]["password"] == SECRET_LABELS[conn_type]
        assert "password" not in behaviour["hidden-fields"] and "host" not in behaviour["hidden-fields"]
        # Placeholders name only fields the form shows.
        shown = {"host", "login", "password", "port", "schema"} - set(behaviour["hidden-fields"])
        assert set(behaviour["placeholders"]) <= shown | set(entry["conn-fields"]), conn_type


def test_every_source_spec_has_its_connection_type() -> None:
    """The provider info lists what the source specs declare (their conn_type and hook), no more, no less.

    The list is written out in pulse/provider.py rather than derived from the specs on purpose: Airflow calls
    ``get_provider_info()`` at the start of every component and does not catch its exceptions, so it imports
    nothing that a broken source module could break.
    """
    spec = pytest.importorskip("pulse.sources.spec")
    declared = {
        s.conn_type: s.hook.replace(":", ".") for s in spec.all_sources() if s.hook.startswith("pulse.hooks.")
    }
    assert declared == {e["connection-type"]: e["hook-class-name"] for e in CONNECTION_TYPES}


def test_the_form_offers_the_paging_engines_retry_extras() -> None:
    base = pytest.importorskip("pulse.hooks.base")
    for entry in CONNECTION_TYPES:
        assert set(base.RETRY_EXTRAS) <= set(entry["conn-fields"]), entry["connection-type"]


@pytest.mark.parametrize("conn_type", sorted(EXPECTED))
def test_hook_class_agrees_with_the_provider_info(conn_type: str) -> None:
    """The class attributes Airflow reads when it imports the hook (a mismatch only logs a warning there)."""
    hook = _hook_class(conn_type)
    assert hook.conn_type == conn_type
    assert hook.hook_name == EXPECTED[conn_type][1]
    assert hook.conn_name_attr in inspect.signature(hook.__init__).parameters
    assert callable(getattr(hook, "test_connection", None))
    # Airflow 3.3 takes the form from the provider info; a hook's own (deprecated) behaviour, if it declares
    # one (BaseHook's is empty), must not tell another story.
    behaviour = hook.get_ui_field_behaviour()
    assert not behaviour or behaviour == ui_field_behaviour(conn_type)
    # The form's timeout field states the hook's default.
    entry = next(e for e in CONNECTION_TYPES if e["connection-type"] == conn_type)
    if hasattr(hook, "default_timeout"):
        assert f"(default {hook.default_timeout:g})" in entry["conn-fields"]["timeout"]["description"]


def test_ui_field_behaviour_speaks_the_hooks_format() -> None:
    assert ui_field_behaviour("pulse_reddit") == {
        "hidden_fields": ["schema", "port"],
        "relabeling": {
            "host": "API base URL (optional)",
            "login": "Client ID",
            "password": "Client secret",
        },
        "placeholders": CONNECTION_TYPES[0]["ui-field-behaviour"]["placeholders"],
    }
    assert ui_field_behaviour("generic") == {}  # BaseHook's answer for a type Pulse does not register


def test_the_distribution_exposes_the_entry_point() -> None:
    """``make install`` installed the project: Airflow finds the provider through this entry point."""
    points = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.name == PACKAGE_NAME
    ]
    # (A `pip install -e .` also leaves plugins/pulse.egg-info, a second copy on sys.path: Airflow keeps one.)
    assert {ep.value for ep in points} == {"pulse.provider:get_provider_info"}, "run `make install`"
    assert points[0].load() is get_provider_info


# --------------------------------------------------------------------------------------- what Airflow makes


def test_airflow_discovers_the_provider(discovered: dict[str, Any]) -> None:
    assert discovered["provider"]["package-name"] == "pulse"
    assert discovered["version"] == get_provider_info()["versions"][0]
    # Airflow only logs these (the hook's conn_type differs from the provider info's, an import failed).
    assert "Inconsistency!" not in discovered["log"]
    assert "Exception when importing" not in discovered["log"]


def test_providers_manager_maps_each_type_to_its_hook(discovered: dict[str, Any]) -> None:
    hooks = discovered["hooks"]
    assert sorted(hooks) == sorted(EXPECTED)
    for conn_type, (class_name, hook_name) in EXPECTED.items():
        info = hooks[conn_type]
        assert info is not None, f"{conn_type}: the hook class did not import"
        assert info["hook_class_name"] == class_name
        assert info["connection_type"] == conn_type
        assert info["hook_name"] == hook_name
        assert info["package_name"] == "pulse"
        assert info["connection_testable"] is True


def test_the_ui_form_data_needs_no_hook_import(discovered: dict[str, Any]) -> None:
    """The api-server builds the form from the provider info alone (no praw, tweepy ... at start-up)."""
    assert discovered["imported_before_test"] == []
    meta = discovered["hook_meta"]
    assert sorted(meta) == sorted(EXPECTED)
    for conn_type, (class_name, hook_name) in EXPECTED.items():
        assert meta[conn_type]["hook_class_name"] == class_name
        assert meta[conn_type]["hook_name"] == hook_name
        assert meta[conn_type]["standard_fields"]["password"]["title"] == SECRET_LABELS[conn_type]
        assert meta[conn_type]["standard_fields"]["url_schema"]["hidden"] is True
        extra = meta[conn_type]["extra_fields"]
        assert {"timeout", "max_attempts", "backoff"} <= set(extra)
        assert all(f"extra__{conn_type}__{name}" in discovered["widgets"] for name in extra)


def test_reddit_form_fields(discovered: dict[str, Any]) -> None:
    reddit = discovered["hook_meta"]["pulse_reddit"]
    fields = reddit["standard_fields"]
    assert fields["login"] == {
        "hidden": False,
        "title": "Client ID",
        "placeholder": fields["login"]["placeholder"],
    }
    assert fields["password"]["title"] == "Client secret"
    assert fields["host"]["hidden"] is False and fields["host"]["title"] == "API base URL (optional)"
    assert fields["port"]["hidden"] is True
    user_agent = reddit["extra_fields"]["user_agent"]
    assert user_agent["schema"]["title"] == "User agent"
    assert user_agent["schema"]["type"] == ["string", "null"]
    assert reddit["extra_fields"]["max_attempts"]["schema"]["type"] == ["integer", "null"]


def test_the_test_button_path_against_the_simulator(discovered: dict[str, Any]) -> None:
    assert discovered["test_good"] == [True, "Connection successfully tested"]
    ok, message = discovered["test_bad"]
    assert ok is False
    assert message and "not-the-secret" not in message


def test_pulse_is_imported_once_from_plugins(discovered: dict[str, Any]) -> None:
    """The editable install maps the same files Airflow's plugins folder holds: one module per file."""
    modules = discovered["pulse_modules"]
    assert any(name == "pulse.provider" for name, _ in modules)
    assert all(name == "pulse" or name.startswith("pulse.") for name, _ in modules), modules
    paths = [path for _, path in modules]
    assert all(path.startswith(str(ROOT / "plugins" / "pulse")) for path in paths)
    assert len(paths) == len(set(paths)), "a file of plugins/pulse was imported under two names"

"""Pulse as an Airflow provider: the connection types of the six source hooks.

Airflow finds providers through the ``apache_airflow_provider`` entry point of installed distributions
(``[project.entry-points.apache_airflow_provider]`` in pyproject.toml points here; ``make install`` and the
Dockerfile install the project editable, so the entry point exists in the venv and in the Astro image).
``ProvidersManager`` calls :func:`get_provider_info`, validates the dict against Airflow's
``provider_info.schema.json`` and registers every ``connection-types`` entry.

The connection form is declared here, not on the hooks: since Airflow 3.2 the UI's form data
(``GET /ui/connections/hook_meta``) is built from ``hook-name``, ``ui-field-behaviour`` and ``conn-fields`` of
the provider info without importing any hook, and a hook's ``get_ui_field_behaviour()`` is deprecated and
only consulted when the provider info declares nothing. The Test button (``POST /api/v2/connections/test``,
needs ``[core] test_connection = Enabled``) imports the hook class and calls its ``test_connection()``.

This module must stay light and self-contained: every Airflow component (api-server, scheduler, workers, the
CLI) calls :func:`get_provider_info` at start-up and does not catch its exceptions, so it imports nothing of
Pulse (no hook, no source module). ``tests/hooks/test_provider.py`` checks the list against the source specs.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

#: The distribution name in pyproject.toml; Airflow requires provider info's ``package-name`` to equal it.
PACKAGE_NAME = "pulse"


def _int_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["integer", "null"]}, "description": description}


def _number_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["number", "null"]}, "description": description}


def _str_field(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["string", "null"]}, "description": description}


def _retry_fields(default_timeout: int) -> dict[str, dict[str, Any]]:
    """The extras the paging engine reads for every hook (``pulse.hooks.base.RETRY_EXTRAS``; explicit hook
    arguments win over them)."""
    return {
        "timeout": _number_field(
            "Timeout (s)", f"Optional. Seconds to wait for one response (default {default_timeout})."
        ),
        "max_attempts": _int_field(
            "Max attempts",
            "Optional. Attempts per page for throttling, server errors, timeouts and malformed bodies "
            "(default 6).",
        ),
        "backoff": _number_field(
            "Backoff (s)", "Optional. First wait after a failed attempt; it doubles per attempt (default 1)."
        ),
        "jitter": _number_field(
            "Jitter",
            "Optional. Up to this fraction of a backoff wait is added at random (default 0.25; 0 turns it off).",
        ),
        "max_wait": _number_field(
            "Max wait (s)", "Optional. The longest single wait; a longer Retry-After is capped (default 60)."
        ),
    }


#: One entry per source hook, in the format of a provider.yaml ``connection-types`` item.
CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "pulse_reddit",
        "hook-class-name": "pulse.hooks.reddit.RedditHook",
        "hook-name": "Reddit (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {
                "host": "API base URL (optional)",
                "login": "Client ID",
                "password": "Client secret",
            },
            "placeholders": {
                "host": "leave empty for reddit.com (a test server's URL otherwise)",
                "login": "the app's client id (under the app name at reddit.com/prefs/apps)",
                "password": "the app's secret",
                "user_agent": "pulse/0.1 (by u/your_reddit_user)",
                "timeout": "16",
            },
        },
        "conn-fields": {
            "user_agent": _str_field(
                "User agent",
                "Reddit asks for '<platform>:<app id>:<version> (by u/<username>)'; requests without one "
                "are throttled.",
            ),
            **_retry_fields(16),
        },
    },
    {
        "connection-type": "pulse_x",
        "hook-class-name": "pulse.hooks.x.XHook",
        "hook-name": "X (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login"],
            "relabeling": {"host": "API base URL", "password": "Bearer token"},
            "placeholders": {
                "host": "https://api.twitter.com",
                "password": "the app's bearer token (X developer portal, Keys and tokens)",
                "timeout": "30",
            },
        },
        "conn-fields": _retry_fields(30),
    },
    {
        "connection-type": "pulse_newsapi",
        "hook-class-name": "pulse.hooks.newsapi.NewsApiHook",
        "hook-name": "NewsAPI (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {
                "host": "https://newsapi.org",
                "password": "your NewsAPI key (newsapi.org/account)",
                "timeout": "30",
            },
        },
        "conn-fields": {
            **_retry_fields(30),
            "max_results": _int_field(
                "Max results",
                "Optional. The plan's cap on results per query (the Developer plan stops at 100).",
            ),
        },
    },
    {
        "connection-type": "pulse_alphavantage",
        "hook-class-name": "pulse.hooks.alphavantage.AlphaVantageHook",
        "hook-name": "Alpha Vantage (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {
                "host": "https://www.alphavantage.co",
                "password": "your Alpha Vantage API key",
                "timeout": "30",
            },
        },
        "conn-fields": {
            **_retry_fields(30),
            "throttle_wait": _number_field(
                "Throttle wait (s)",
                "Optional. Wait after Alpha Vantage's 'Note'/'Information' throttle body before retrying.",
            ),
        },
    },
    {
        "connection-type": "pulse_openweathermap",
        "hook-class-name": "pulse.hooks.openweathermap.OpenWeatherMapHook",
        "hook-name": "OpenWeatherMap (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port"],
            "relabeling": {"host": "API base URL (optional)", "password": "API key"},
            "placeholders": {
                "host": "leave empty for api.openweathermap.org (a test server's URL otherwise)",
                "password": "your OpenWeatherMap API key",
                "timeout": "10",
            },
        },
        "conn-fields": _retry_fields(10),
    },
    {
        "connection-type": "pulse_github",
        "hook-class-name": "pulse.hooks.github.GithubSourceHook",
        "hook-name": "GitHub (Pulse)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port"],
            "relabeling": {"host": "API base URL", "password": "Token"},
            "placeholders": {
                "host": "https://api.github.com",
                "password": "a fine-grained token with public read access (optional, raises the rate limit)",
                "user_agent": "pulse/0.1",
                "seconds_between_requests": "0.25",
                "timeout": "15",
            },
        },
        "conn-fields": {
            "user_agent": _str_field("User agent", "Optional. GitHub requires one; Pulse sends its own."),
            "seconds_between_requests": _number_field(
                "Seconds between requests",
                "Optional. Pause between requests (default 0.25 on api.github.com, 0 elsewhere).",
            ),
            **_retry_fields(15),
        },
    },
]


def _version() -> str:
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:  # imported from plugins/ without the distribution installed
        return "0.0.0"


def get_provider_info() -> dict[str, Any]:
    """The provider info Airflow reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Pulse",
        "description": "Pulse's source hooks (Reddit, X, NewsAPI, Alpha Vantage, OpenWeatherMap, GitHub) as "
        "connection types with a connection form and a Test button.",
        "versions": [_version()],
        "connection-types": CONNECTION_TYPES,
    }


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The declared form behaviour of one connection type, in the hooks' ``get_ui_field_behaviour()`` format.

    Lets a hook's (deprecated) ``get_ui_field_behaviour()`` return exactly what the provider info declares;
    a type Pulse does not register (a toy source's hook in a test, say) gets BaseHook's empty answer.
    """
    for entry in CONNECTION_TYPES:
        if entry["connection-type"] == conn_type:
            behaviour = entry["ui-field-behaviour"]
            return {
                "hidden_fields": list(behaviour["hidden-fields"]),
                "relabeling": dict(behaviour["relabeling"]),
                "placeholders": dict(behaviour["placeholders"]),
            }
    return {}

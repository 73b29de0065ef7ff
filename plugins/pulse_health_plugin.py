"""Pulse's health endpoint, ``GET /pulse/health`` on Airflow's api-server, as an Airflow plugin.

The checks live in ``plugins/pulse/health.py`` (docs/health.md says what each part checks). This file is
where Airflow's plugin manager finds the plugin: ``plugins/pulse/`` is ``.airflowignore``d, and a file named
``pulse.py`` would replace the ``pulse`` package. Every Airflow process and every task process executes this
file, so it imports only FastAPI and the plugin base class: the app itself (Airflow's auth dependencies, the
checks and what they import) is built on the first request, in the api-server only (:class:`LazyApp`).

Authentication is Airflow's: ``requires_authenticated()`` (``GetUserDep``) takes the bearer token
(``POST /auth/token``) or the UI's session cookie and answers 401/403 without one. (``AuthManagerDep`` is not used: it reads the sub-app's
state, which has no auth manager.) The answer is JSON, HTTP 200 when healthy and 503 otherwise.
``GET /pulse/metrics`` (``plugins/pulse/metrics.py``, docs/metrics.md) answers Prometheus text, outside Airflow's
auth (its JWTs expire): open, or behind the static bearer token ``PULSE_METRICS_TOKEN`` when that is set.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

#: Where the app is mounted on the api-server (``/pulse/health``).
URL_PREFIX = "/pulse"


def create_app() -> FastAPI:
    """The plugin's FastAPI app: ``GET /health`` behind Airflow's authentication."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends, Header
    from fastapi.responses import JSONResponse, PlainTextResponse, Response
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(
        title="Pulse",
        description="Pulse's health: Airflow, the warehouse, the sources, publication, object storage.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get(
        "/health",
        summary="Pulse health (200 healthy, 503 with the failing parts)",
        dependencies=[Depends(requires_authenticated())],
        response_model=None,
    )
    async def health() -> Any:
        from pulse.health import HEALTHY, check_health

        answer = await run_in_threadpool(check_health)
        return JSONResponse(answer, status_code=200 if answer["status"] == HEALTHY else 503)

    @app.get(
        "/metrics",
        summary="Pulse pipeline metrics (Prometheus text; optional static token PULSE_METRICS_TOKEN)",
        response_model=None,
    )
    async def metrics(authorization: str | None = Header(default=None)) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST

        from pulse.metrics import TOKEN_ENV, authorized, render

        if not authorized(authorization):
            return PlainTextResponse(
                f"401: a bearer token ({TOKEN_ENV}) is required\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Response(await run_in_threadpool(render), media_type=CONTENT_TYPE_LATEST)

    return app


class LazyApp:
    """An ASGI app that builds :func:`create_app` on its first request (and tests may read :attr:`app`)."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


pulse_app = LazyApp()


class PulseHealthPlugin(AirflowPlugin):
    """Serves ``GET /pulse/health`` on the api-server."""

    name = "pulse_health"
    fastapi_apps = [{"app": pulse_app, "url_prefix": URL_PREFIX, "name": "Pulse health"}]

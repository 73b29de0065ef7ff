"""The recorded responses of the contract tests, and the one local HTTP server that plays them back.

The recordings are third-party data kept outside the repo, in ``<shared>/payloads/<api>`` (``PULSE_SHARED_DIR`` or
``<repo>/../shared``); they are read from there at test time, never copied. :func:`recordings` skips the calling
test module when its folder is absent.

:class:`ReplayServer` answers GET requests with scripted ``(status, headers, body)`` answers: per path in order
(:meth:`ReplayServer.route`, the last answer repeats), else from one queue in order (:meth:`ReplayServer.play`),
else its ``default``; or a test gives its own ``respond(request)``. Every request is kept in ``requests``. The
``replay`` fixture (tests/contract/conftest.py) starts one and points an Airflow connection at it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PULSE_SHARED_DIR") or REPO.parent / "shared")

#: The simulator's clock in the contract tests.
NOW = "2026-11-28T12:00:00Z"


def recordings(api: str, label: str) -> Path:
    """``<shared>/payloads/<api>``; skips the calling module (at import) when it is absent."""
    folder = SHARED / "payloads" / api
    if not folder.is_dir():
        pytest.skip(f"recorded {label} payloads not found in {folder}", allow_module_level=True)
    return folder


def load_json(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def header_rows(folder: Path, section: str | None = None, name: str = r"[a-z0-9-]+") -> dict[str, str]:
    """The ``| header | value |`` rows of ``HEADERS.md`` (of one ``## <section>``, or the whole file), by name as
    written (``name`` is the pattern of a header name)."""
    text = (folder / "HEADERS.md").read_text(encoding="utf-8")
    if section is not None:
        match = re.search(rf"^## {re.escape(section)}.*?(?=^## |\Z)", text, flags=re.S | re.M)
        assert match, f"{section} not described in HEADERS.md"
        text = match.group(0)
    rows = re.findall(rf"^\| ({name}) \| (.*?) \|$", text, flags=re.M)
    return {key: value for key, value in rows if key.lower() != "header"}


#: One answer: HTTP status, headers, body.
Answer = tuple[int, Mapping[str, str], bytes]


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    path: str  #: without the query
    target: str  #: the request target as sent (path and query)
    query: dict[str, str]
    headers: dict[str, str]


class ReplayServer:
    """A local HTTP server answering GET requests with scripted answers (see the module docstring).

    ``server_headers=False`` sends no ``Server``/``Date`` headers of its own (a recorded ``date`` is then the only
    one). Content-Length is always set from the body.
    """

    def __init__(
        self,
        respond: Callable[[Request], Answer] | None = None,
        *,
        default: Answer = (404, {}, b'{"message": "nothing scripted"}'),
        server_headers: bool = True,
    ) -> None:
        self.respond = respond
        self.default = default
        self.server_headers = server_headers
        self.queue: list[Answer] = []
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[Request] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                request = Request(split.path, self.path, dict(parse_qsl(split.query)), dict(self.headers))
                replay.requests.append(request)
                status, headers, body = (replay.respond or replay.next_answer)(request)
                if replay.server_headers:
                    self.send_response(status)
                else:
                    self.send_response_only(status)
                for key, value in headers.items():
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def play(self, *answers: Answer) -> None:
        """Answer the next requests, whatever their path, with ``answers`` in order; forget earlier requests."""
        self.queue[:] = answers
        self.requests.clear()

    def route(self, path: str, *answers: Answer) -> None:
        """Answer requests for ``path`` with ``answers`` in order (added after earlier ones); the last repeats."""
        self.routes.setdefault(path, []).extend(answers)

    def next_answer(self, request: Request) -> Answer:
        """The scripted answer to ``request``: its path's next one, else the queue's next one, else the default."""
        steps = self.routes.get(request.path)
        if steps:
            return steps.pop(0) if len(steps) > 1 else steps[0]
        if self.queue:
            return self.queue.pop(0)
        return self.default

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

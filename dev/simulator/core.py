"""Generic core of the source simulator: HTTP server, routing, clock, config, fault switches and stats.

Nothing in here knows about a particular API. A source module (``dev/simulator/reddit.py`` and, later, one
module per API) subclasses :class:`Source`, declares its routes and its default config, and registers itself
with :func:`register_source`. The core then

* routes ``{METHOD} {path}`` to the first source route that matches (a path may also be prefixed with
  ``/<source name>`` to reach one source only, e.g. ``/reddit/r/python/new``);
* runs every *API* route through the same pipeline (request counting, fixed-window rate-limit bookkeeping,
  ``server_errors`` / ``rate_limit`` one-shot faults, authorisation hook, ``malformed`` bodies,
  ``latency_ms``) and records stats;
* serves the admin API under ``/_sim/`` (health, config, reset, stats, concurrency).

Every request is decided under one lock, so fault counters are consumed in request order and runs are
reproducible; only the ``latency_ms`` sleep and the socket write happen outside the lock.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import ipaddress
import json
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from . import hostile as _hostile

# Modules imported by every SimulatorServer so that their sources register themselves.
# Adding an API to the simulator = one module with a Source subclass + one line here.
#: One module per simulated API, found by file name: ``dev/simulator/<source>.py``.
_NOT_SOURCES = {"__init__", "__main__", "core"}
SOURCE_MODULES: tuple[str, ...] = tuple(
    f"dev.simulator.{p.stem}"
    for p in sorted(Path(__file__).resolve().parent.glob("*.py"))
    if p.stem not in _NOT_SOURCES and not p.stem.startswith("_")
)

_REGISTRY: dict[str, type[Source]] = {}

JSON_TYPE = "application/json; charset=UTF-8"


# --------------------------------------------------------------------------------------------------
# small helpers shared by source modules
# --------------------------------------------------------------------------------------------------


def stable_hash(*parts: object) -> int:
    """A process-independent 256-bit integer hash of ``parts`` (never Python's salted ``hash()``)."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def stable_fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) derived from ``parts``."""
    return (stable_hash(*parts) >> 200) / float(1 << 56)


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(number: int) -> str:
    """Lowercase base36 representation of a non-negative integer."""
    if number < 0:
        raise ValueError("negative number")
    if number == 0:
        return "0"
    out: list[str] = []
    while number:
        number, rem = divmod(number, 36)
        out.append(_B36[rem])
    return "".join(reversed(out))


def parse_time(value: Any) -> float | None:
    """Turn ``None`` / aware-or-naive datetime / ISO-8601 string / epoch number into epoch seconds.

    Naive datetimes and ISO strings without an offset are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return dt.timestamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise ValueError(f"not a time: {value!r}")


def format_time(epoch: float | None) -> str | None:
    """ISO-8601 UTC string (``...Z``) for an epoch, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def json_bytes(obj: Any) -> bytes:
    """Serialise like the real APIs do: UTF-8, non-ASCII kept, control characters escaped."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def is_loopback_host(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if default is None:
        return True
    return isinstance(value, type(default))


def merge_config(
    target: dict[str, Any], update: Mapping[str, Any], defaults: Mapping[str, Any], where: str
) -> None:
    """Deep-merge ``update`` into ``target`` in place, validating keys and types against ``defaults``.

    Raises ValueError (unknown key, wrong type) before changing anything.
    """
    _validate(update, defaults, where)
    _merge(target, update)


def _validate(update: Any, defaults: Mapping[str, Any], where: str) -> None:
    if not isinstance(update, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(update).__name__}")
    for key, value in update.items():
        path = f"{where}.{key}"
        if key not in defaults:
            raise ValueError(f"{path}: unknown setting (known: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if isinstance(default, dict):
            _validate(value, default, path)
        elif not _type_ok(default, value):
            raise ValueError(f"{path}: expected {type(default).__name__}, got {type(value).__name__}")


def _merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif isinstance(target.get(key), float) and isinstance(value, int):
            target[key] = float(value)
        else:
            target[key] = copy.deepcopy(value)


# --------------------------------------------------------------------------------------------------
# request / response / route model
# --------------------------------------------------------------------------------------------------


@dataclass
class Request:
    """An incoming HTTP request as seen by a source handler."""

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    now: float

    def header(self, name: str, default: str = "") -> str:
        """Case-insensitive header lookup."""
        value = self.headers.get(name)
        return default if value is None else str(value)

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first value per key)."""
        out: dict[str, str] = {}
        for key, value in parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True):
            out.setdefault(key, value)
        return out


@dataclass(frozen=True)
class ServedItem:
    """One data item carried by a response; recorded in the stats when the response is a clean 200."""

    identity: str
    endpoint: str
    bad: str | None = None


@dataclass
class Response:
    """What a handler returns; the core adds the pipeline headers and writes it."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    served: list[ServedItem] = field(default_factory=list)
    malformable: bool = False  # True for listing/data responses the ``malformed`` switch may truncate
    #: The source whose in-flight count this response holds until it is written (set by the core).
    in_flight_of: str | None = field(default=None, init=False, repr=False, compare=False)


def json_response(status: int, obj: Any, headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
    """A JSON response."""
    return Response(status=status, body=json_bytes(obj), headers=dict(headers or {}), **kw)


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    """``method`` + full-match regex on the path (trailing slash already stripped).

    ``api=False`` routes (e.g. an OAuth token endpoint) bypass the fault pipeline, the rate-limit window
    and the API request counters; they are counted under ``token_requests`` in the stats.
    """

    method: str
    pattern: str
    handler: Handler
    api: bool = True

    def match(self, method: str, path: str) -> re.Match[str] | None:
        """The regex match when method and path fit this route."""
        if self.method != "*" and self.method != method:
            return None
        return re.fullmatch(self.pattern, path)


@dataclass(frozen=True)
class Window:
    """Fixed rate-limit window bookkeeping for one API response."""

    used: int
    budget: int
    reset: int  # seconds until the window ends (1..size)

    @property
    def remaining(self) -> int:
        """Requests left in the window (never negative)."""
        return max(self.budget - self.used, 0)


# --------------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------------


class Source:
    """Base class of a simulated API.

    Subclasses set ``name`` and ``defaults`` and implement :meth:`routes`. Generic fault switches are
    honoured when their key is present in ``defaults``:

    ``rate_limit`` {"count", "retry_after"}, ``server_errors`` {"count", "status"}, ``latency_ms`` int,
    ``malformed`` {"count", "always", "skip"} (``skip``: leave that many responses intact first), ``ratelimit_budget`` int and ``ratelimit_window`` int (seconds).

    Keys listed in ``fault_keys`` are restored to their defaults by ``reset()``; every other key
    (volume, credentials, ...) survives a reset.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    fault_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, sim: SimulatorServer) -> None:
        self.sim = sim
        self.config: dict[str, Any] = copy.deepcopy(self.defaults)

    # -- to implement -------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The routes of this source, tried in order."""
        raise NotImplementedError

    # -- hooks with generic defaults -----------------------------------------------------------------
    def authorize(self, request: Request) -> Response | None:
        """Return an error response when the request is not authorised, else None."""
        return None

    def rate_limited(self, retry_after: int) -> Response:
        """The response of the ``rate_limit`` fault."""
        return json_response(
            429, {"error": 429, "message": "Too Many Requests"}, {"Retry-After": str(retry_after)}
        )

    def server_error(self, status: int) -> Response:
        """The response of the ``server_errors`` fault."""
        return Response(status=status, body=html_error(status), content_type="text/html; charset=UTF-8")

    def not_found(self, request: Request) -> Response:
        """Response for a path claimed by the source but not implemented."""
        return json_response(404, {"error": 404, "message": "Not Found"})

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """Headers added to every API response (rate-limit info)."""
        return {}

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Raise ValueError when a merged config has out-of-range values (types are checked already)."""

    def on_reset(self) -> None:
        """Clear source-specific counters (called under the server lock by ``reset()``)."""


def _check_drift(drift: Any, where: str) -> dict[str, Any]:
    """Validate a drift setting: null, or {"rename": {str: str}, "drop": [str]}."""
    if drift is None:
        return {}
    if not isinstance(drift, Mapping) or set(drift) - {"rename", "drop"}:
        raise ValueError(f"{where}: expected {{'rename': {{old: new}}, 'drop': [field, ...]}}")
    rename = drift.get("rename") or {}
    drop = drift.get("drop") or []
    if not isinstance(rename, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in rename.items()
    ):
        raise ValueError(f"{where}.rename: expected an object of field names")
    if not isinstance(drop, list) or not all(isinstance(v, str) for v in drop):
        raise ValueError(f"{where}.drop: expected a list of field names")
    return {"rename": dict(rename), "drop": list(drop)}


def apply_drift(response: Response, drift: Any) -> Response:
    """Schema drift on a JSON response: ``{"rename": {"old": "new"}, "drop": ["field"]}`` applied to every
    object in the body, as when an API renames or removes a field without notice."""
    if not drift or response.status != 200 or not response.body:
        return response
    rename = dict(drift.get("rename") or {})
    drop = set(drift.get("drop") or [])

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {rename.get(k, k): walk(v) for k, v in node.items() if k not in drop}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    try:
        doc = json.loads(response.body)
    except ValueError:
        return response
    response.body = json_bytes(walk(doc))
    return response


def html_error(status: int) -> bytes:
    """The HTML body a gateway serves for a 5xx."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"<html><body><h1>{status} {phrase}</h1></body></html>".encode()


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make a source available to every SimulatorServer."""
    if not cls.name:
        raise ValueError("a Source needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def registered_sources() -> dict[str, type[Source]]:
    """Import the built-in source modules and return the registry (name -> class)."""
    for module in SOURCE_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


# --------------------------------------------------------------------------------------------------
# per-source runtime state
# --------------------------------------------------------------------------------------------------


class _SourceState:
    def __init__(self) -> None:
        #: API requests being answered right now, and the most ever answered at once (``/_sim/concurrency``).
        self.in_flight = 0
        self.clear()

    def clear(self) -> None:
        self.requests = 0
        self.by_status: dict[str, int] = {}
        self.token_requests = 0
        self.token_by_status: dict[str, int] = {}
        self.served: dict[str, dict[str, Any]] = {}
        self.window_id: int | None = None
        self.window_used = 0
        self.max_in_flight = self.in_flight  # requests still being answered keep counting

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "token_requests": self.token_requests,
            "token_by_status": dict(self.token_by_status),
            "served": copy.deepcopy(self.served),
            "served_count": len(self.served),
        }


# --------------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------------


class SimulatorServer:
    """A deterministic local HTTP server imitating third-party APIs (one :class:`Source` per API).

    ``now``: None for the real clock, or a fixed time (aware datetime, ISO string or epoch seconds).
    Serves in a daemon thread after :meth:`start`; ``port=0`` picks a free port (see :attr:`url`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 42,
        now: Any = None,
        *,
        sources: Iterable[str] | None = None,
        allow_remote: bool = False,
        playback: str | Path | None = None,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(f"refusing to listen on non-loopback host {host!r} (pass allow_remote=True)")
        self.host = host
        self.port = port
        self.seed = int(seed)
        self._now = parse_time(now)
        self.lock = threading.RLock()
        #: Folder of recorded responses played in order: ``<playback>/<source>/<endpoint>/NNN.json``.
        self.playback: Path | None = Path(playback) if playback else None
        self._played: dict[tuple[str, str], int] = {}
        #: Schema drift per source (``{"rename": {...}, "drop": [...]}``), a fault that ``reset()`` clears.
        self._drift: dict[str, dict[str, Any]] = {}
        #: Hand-made hostile items per source (``dev/simulator/hostile.py``), a fault that ``reset()`` clears.
        self._hostile: dict[str, dict[str, Any]] = {}
        #: A burst of one term's volume and tone (``dev/simulator/text.py`` :class:`Spike`), or None.
        self.spike: Any = None
        available = registered_sources()
        names = list(available) if sources is None else list(sources)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"unknown sources: {unknown}")
        self.sources: dict[str, Source] = {n: available[n](self) for n in names}
        self._state: dict[str, _SourceState] = {n: _SourceState() for n in names}
        self._routes: list[tuple[str, Route]] = [(n, r) for n, s in self.sources.items() for r in s.routes()]
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> SimulatorServer:
        """Bind and serve in a daemon thread. Returns self."""
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name="simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- clock ---------------------------------------------------------------------------------------
    def now(self) -> float:
        """Current simulated time (epoch seconds)."""
        fixed = self._now
        return time.time() if fixed is None else fixed

    def set_now(self, value: Any) -> None:
        """Fix the clock (datetime / ISO string / epoch), or None for the real clock."""
        parsed = parse_time(value)
        with self.lock:
            self._now = parsed

    # -- config --------------------------------------------------------------------------------------
    def configure(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``{"<source>": {...}, "now": ..., "seed": ..., "spike": {...} | null}`` (deep merge); returns
        the new config. ``spike``: ``{"term", "start", "end", "factor", "tone", "sources"}`` (see
        ``dev/simulator/text.py``), replaced as a whole; it survives ``reset()``.

        Validation happens before anything is changed; raises ValueError on unknown keys or wrong types.
        """
        if not isinstance(update, Mapping):
            raise ValueError("config must be a JSON object")
        known = ("now", "seed", "playback", "spike")
        unknown = [k for k in update if k not in self.sources and k not in known]
        if unknown:
            raise ValueError(f"unknown config keys: {unknown} (sources: {sorted(self.sources)})")
        new_now = parse_time(update["now"]) if "now" in update else None
        seed = update.get("seed")
        if "seed" in update and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        drifts: dict[str, dict[str, Any]] = {}
        for name in self.sources:
            if isinstance(update.get(name), Mapping) and "drift" in update[name]:
                drifts[name] = _check_drift(update[name]["drift"], f"{name}.drift")
        if "spike" in update:
            from dev.simulator import text as _text

            spike = _text.check_spike(update["spike"])
        hostiles = {
            name: _hostile.check(update[name]["hostile"], f"{name}.hostile")
            for name in self.sources
            if isinstance(update.get(name), Mapping) and "hostile" in update[name]
        }
        with self.lock:
            merged: dict[str, dict[str, Any]] = {}
            for name, source in self.sources.items():
                if name in update:
                    candidate = copy.deepcopy(source.config)
                    rest = {k: v for k, v in update[name].items() if k not in ("drift", "hostile")}
                    merge_config(candidate, rest, source.defaults, name)
                    source.check_config(candidate)
                    merged[name] = candidate
            for name, candidate in merged.items():
                self.sources[name].config = candidate
            for name, drift in drifts.items():
                if drift:
                    self._drift[name] = drift
                else:
                    self._drift.pop(name, None)
            for name, rules in hostiles.items():
                self._hostile[name] = rules
            if "now" in update:
                self._now = new_now
            if "seed" in update:
                self.seed = int(update["seed"])
            if "spike" in update:
                self.spike = spike
            if "playback" in update:
                self.playback = Path(update["playback"]) if update["playback"] else None
                self._played.clear()
            return self.get_config()

    def get_config(self) -> dict[str, Any]:
        """Current config: ``{"seed", "now", "<source>": {...}}``."""
        with self.lock:
            out: dict[str, Any] = {
                "seed": self.seed,
                "now": format_time(self._now),
                "playback": str(self.playback) if self.playback else None,
                "spike": self.spike.as_dict() if self.spike is not None else None,
            }
            for name, source in self.sources.items():
                out[name] = copy.deepcopy(source.config)
            return out

    def reset(self) -> None:
        """Clear counters, stats and fault switches; keep seed, clock, volume and credentials."""
        with self.lock:
            for name, source in self.sources.items():
                for key in source.fault_keys:
                    if key in source.defaults:
                        source.config[key] = copy.deepcopy(source.defaults[key])
                self._state[name].clear()
                source.on_reset()
            self._drift.clear()
            self._hostile.clear()
            self._played.clear()

    def stats(self) -> dict[str, Any]:
        """``{"<source>": {"requests", "by_status", "token_requests", "token_by_status", "served",
        "served_count"}}`` (a snapshot)."""
        with self.lock:
            return {name: state.snapshot() for name, state in self._state.items()}

    # -- dispatch ------------------------------------------------------------------------------------
    def dispatch(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[Response, float]:
        """Answer one request; returns the response and the latency (seconds) to wait before sending."""
        split = urlsplit(raw_path)
        path = split.path or "/"
        query: dict[str, str] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(key, value)
        if path.startswith("/_sim/") or path == "/_sim":
            return self._admin(method, path.rstrip("/"), body), 0.0
        norm = path.rstrip("/") or "/"
        with self.lock:
            found = self._find(method, norm)
            if found is not None:
                name, route, match = found
                request = Request(
                    method=method, path=match.string, query=query, headers=headers, body=body, now=self.now()
                )
                return self._run(name, route, match, request)
        return json_response(404, {"error": 404, "message": "Not Found", "path": path}), 0.0

    def _find(self, method: str, path: str) -> tuple[str, Route, re.Match[str]] | None:
        """First matching route; ``/<source>/rest`` reaches only that source's routes with ``/rest``."""
        parts = path.split("/", 2)
        if len(parts) > 1 and parts[1] in self.sources:
            rest = "/" + parts[2] if len(parts) > 2 else "/"
            for name, route in self._routes:
                if name == parts[1]:
                    match = route.match(method, rest)
                    if match:
                        return name, route, match
        for name, route in self._routes:
            match = route.match(method, path)
            if match:
                return name, route, match
        return None

    def _run(self, name: str, route: Route, match: re.Match[str], request: Request) -> tuple[Response, float]:
        source = self.sources[name]
        state = self._state[name]
        cfg = source.config
        if not route.api:
            response = self._call(route, match, request)
            state.token_requests += 1
            key = str(response.status)
            state.token_by_status[key] = state.token_by_status.get(key, 0) + 1
            return response, 0.0

        state.requests += 1
        window = self._tick_window(cfg, state, request.now)
        latency = max(int(cfg.get("latency_ms", 0) or 0), 0) / 1000.0
        throttled = False
        malformed = False
        server_errors = cfg.get("server_errors")
        rate_limit = cfg.get("rate_limit")
        if isinstance(server_errors, dict) and server_errors.get("count", 0) > 0:
            server_errors["count"] -= 1
            response = source.server_error(int(server_errors.get("status", 503)))
        elif isinstance(rate_limit, dict) and rate_limit.get("count", 0) > 0:
            rate_limit["count"] -= 1
            throttled = True
            response = source.rate_limited(int(rate_limit.get("retry_after", 1)))
        else:
            response = (
                source.authorize(request)
                or self._play(name, request)
                or apply_drift(self._call(route, match, request), self._drift.get(name))
            )
            if response.status == 200 and response.body and self._hostile.get(name):
                response.body = _hostile.apply(response.body, request.path, self._hostile[name])
            bad_json = cfg.get("malformed")
            if response.malformable and response.status == 200 and isinstance(bad_json, dict):
                if bad_json.get("skip", 0) > 0:
                    bad_json["skip"] -= 1  # let this many responses through untouched first
                elif bad_json.get("always"):
                    malformed = True
                elif bad_json.get("count", 0) > 0:
                    bad_json["count"] -= 1
                    malformed = True
                if malformed:
                    response.body = response.body[: len(response.body) // 2]
        # A played recording's own headers win over the generated rate-limit headers.
        response.headers = {**source.api_headers(window, throttled), **response.headers}
        key = str(response.status)
        state.by_status[key] = state.by_status.get(key, 0) + 1
        if response.status == 200 and not malformed:
            for item in response.served:
                if item.identity not in state.served:
                    state.served[item.identity] = {"endpoint": item.endpoint, "bad": item.bad}
        # In flight from here (every request before this point waited for the lock) until its body is sent.
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        response.in_flight_of = name
        return response, latency

    def finished(self, response: Response) -> None:
        """The response is being written (or could not be): it no longer counts as in flight. Idempotent."""
        name, response.in_flight_of = response.in_flight_of, None
        if name is not None:
            with self.lock:
                self._state[name].in_flight -= 1

    def concurrency(self) -> dict[str, dict[str, int]]:
        """``{"<source>": {"in_flight", "max_in_flight"}}``: API requests of each source being answered now
        and the most answered at once since the start or the last ``reset()`` (latency included), e.g. to
        check that a pool of N slots never lets more than N requests reach the API together."""
        with self.lock:
            return {
                name: {"in_flight": state.in_flight, "max_in_flight": state.max_in_flight}
                for name, state in self._state.items()
            }

    def _play(self, name: str, request: Request) -> Response | None:
        """The next recorded response for this endpoint, if a playback folder holds one.

        ``<playback>/<source>/<endpoint path>/001.json``, ``002.json`` ... are served in order, one per request
        (query strings ignored); ``NNN.status`` (a number) and ``NNN.headers.json`` (an object) may sit beside
        each. When the files run out, the generated behaviour takes over again.
        """
        if self.playback is None:
            return None
        endpoint = request.path.strip("/")
        folder = self.playback / name / endpoint
        if not folder.is_dir():
            return None
        n = self._played.get((name, endpoint), 0) + 1
        body_file = folder / f"{n:03d}.json"
        if not body_file.exists():
            return None
        self._played[(name, endpoint)] = n
        status_file = folder / f"{n:03d}.status"
        headers_file = folder / f"{n:03d}.headers.json"
        status = int(status_file.read_text().strip()) if status_file.exists() else 200
        headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
        return Response(status=status, body=body_file.read_bytes(), headers=headers, malformable=True)

    def _tick_window(self, cfg: Mapping[str, Any], state: _SourceState, now: float) -> Window:
        size = max(int(cfg.get("ratelimit_window", 600) or 600), 1)
        budget = int(cfg.get("ratelimit_budget", 100000))
        window_id = int(now // size)
        if state.window_id != window_id:
            state.window_id = window_id
            state.window_used = 0
        state.window_used += 1
        reset = max(int((window_id + 1) * size - now), 1)
        return Window(used=state.window_used, budget=budget, reset=reset)

    def _call(self, route: Route, match: re.Match[str], request: Request) -> Response:
        try:
            return route.handler(request, match)
        except Exception:  # a handler bug must not kill the connection; report it loudly instead
            traceback.print_exc(file=sys.stderr)
            return json_response(500, {"error": 500, "message": "Internal Server Error (simulator bug)"})

    # -- admin API -----------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> Response:
        try:
            if path == "/_sim/health" and method == "GET":
                return json_response(200, {"ok": True, "sources": list(self.sources)})
            if path == "/_sim/stats" and method == "GET":
                return json_response(200, self.stats())
            if path == "/_sim/concurrency" and method == "GET":
                return json_response(200, self.concurrency())
            if path == "/_sim/config" and method == "GET":
                return json_response(200, self.get_config())
            if path == "/_sim/config" and method == "POST":
                payload = json.loads(body.decode("utf-8") or "{}")
                return json_response(200, self.configure(payload))
            if path == "/_sim/reset" and method == "POST":
                self.reset()
                return json_response(200, {"ok": True})
        except (ValueError, TypeError) as exc:
            return json_response(400, {"ok": False, "error": str(exc)})
        return json_response(404, {"ok": False, "error": f"no admin endpoint {method} {path}"})


def _make_handler(sim: SimulatorServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pulse-simulator/1.0"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return

        def version_string(self) -> str:
            return self.server_version

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            response, latency = sim.dispatch(self.command, self.path, self.headers, body)
            try:
                if latency > 0:
                    time.sleep(latency)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # Answered: no longer in flight once the body goes out (a client that has it and sends its
                # next request never sees both counted).
                sim.finished(response)
                if self.command != "HEAD":
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(response.body)
            finally:
                sim.finished(response)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return _Handler

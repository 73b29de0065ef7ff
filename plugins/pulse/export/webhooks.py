"""Signed webhook notifications to export subscribers: who they are, how bodies are signed, delivery.

* **Subscribers** are configured in a YAML file (``name``, ``conn_id``, ``marts``); the URL and the signing
  secret come from the Airflow connection, never from the file or the code.
* **Signatures**: ``X-Pulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` with the
  Unix time in ``X-Pulse-Timestamp``. Signing the timestamp with the body lets a receiver refuse replays of
  an old request (:func:`verify_signature` allows five minutes of skew by default); the comparison is
  constant-time.
* **Delivery** (:func:`deliver`): a compact JSON body with sorted keys, re-signed on every attempt; 2xx is
  success; 5xx, 408, 429 (``Retry-After`` honoured, capped), timeouts and connection errors are retried with
  exponential backoff and jitter up to ``max_attempts``; any other answer (a 401 from a receiver that refuses
  the signature, a 404, a redirect) stops at once as permanent. ``X-Pulse-Delivery`` is stable for the same
  export and subscriber so a receiver can drop redeliveries. HTTP problems never raise: the result says what
  happened, and the DAG reports a subscriber that keeps failing instead of retrying it forever.

requests, PyYAML and Airflow are imported inside the functions: DAG files may import this module cheaply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulse.storage import storage_url

if TYPE_CHECKING:
    from pulse.export.writers import ExportResult

log = logging.getLogger(__name__)

USER_AGENT = "pulse-export/1"
EVENT_EXPORT_COMPLETED = "export.completed"
DEFAULT_SUBSCRIBERS_FILE = "include/exports/subscribers.yaml"
SIGNATURE_HEADER = "X-Pulse-Signature"
TIMESTAMP_HEADER = "X-Pulse-Timestamp"
DELIVERY_HEADER = "X-Pulse-Delivery"
EVENT_HEADER = "X-Pulse-Event"
#: Statuses worth another attempt; every other non-2xx status is permanent.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))
ALL_MARTS = "*"


@dataclass(frozen=True)
class Subscriber:
    """A webhook subscriber: where to post, the signing secret, which marts it wants (``*``: all)."""

    name: str
    url: str
    secret: str = field(repr=False)  # never in logs or task output
    marts: frozenset[str]
    max_attempts: int = 5  # delivery attempts per notification (optional entry key)
    backoff_s: float = 2.0  # first retry delay, doubled each attempt (optional entry key)

    def wants(self, mart: str) -> bool:
        """Whether this subscriber is notified about exports of ``mart``."""
        return ALL_MARTS in self.marts or mart in self.marts


@dataclass(frozen=True)
class Delivery:
    """What happened to one notification: ``ok``, attempts made, the last status or error.

    ``permanent`` is true when the receiver's answer means retrying cannot help (4xx other than 408/429,
    redirects, an invalid URL): the subscriber's configuration or secret needs a person.
    """

    subscriber: str
    delivery_id: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    permanent: bool


# --- subscribers ------------------------------------------------------------------------------------------


def _url_from_connection(conn: Any) -> str:
    """The subscriber URL as the http provider builds a base URL: a full URL in host, or schema://host:port.

    One difference: a port is only added to a bare host; a full URL in host carries its own port (the
    provider would append it after the path).
    """
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection {conn.conn_id!r} has no host (the webhook URL)")
    if "://" in host:
        return host
    url = f"{conn.schema or 'http'}://{host}"
    return f"{url}:{conn.port}" if conn.port else url


def load_subscribers(path: str | Path = DEFAULT_SUBSCRIBERS_FILE) -> list[Subscriber]:
    """Read the subscribers file: a YAML list of ``{name, conn_id, marts: [..] | "*"}`` (optional
    ``max_attempts``, ``backoff_s``).

    URL and secret come from the Airflow connection ``conn_id``: the URL from its host (a full URL, or
    ``schema://host:port`` as the http provider builds it; schema defaults to http), the secret from its
    password. A missing file, a malformed entry, a duplicate name or a connection without host or password
    raises ``ValueError`` naming the entry: a misconfigured subscriber is a configuration error, not a
    delivery failure.
    """
    import yaml
    from airflow.sdk import BaseHook

    source = Path(path)
    data = yaml.safe_load(source.read_text()) or []
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of subscribers, got {type(data).__name__}")
    subscribers: list[Subscriber] = []
    for i, entry in enumerate(data):
        where = f"{source}: subscriber #{i + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with name, conn_id and marts")
        unknown = set(entry) - {"name", "conn_id", "marts", "max_attempts", "backoff_s"}
        missing = {"name", "conn_id", "marts"} - set(entry)
        if unknown or missing:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        name, conn_id, marts = entry["name"], entry["conn_id"], entry["marts"]
        if not isinstance(name, str) or not name or not isinstance(conn_id, str) or not conn_id:
            raise ValueError(f"{where}: name and conn_id must be non-empty strings")
        if any(s.name == name for s in subscribers):
            raise ValueError(f"{where}: duplicate name {name!r}")
        if marts == ALL_MARTS:
            wanted = frozenset({ALL_MARTS})
        elif isinstance(marts, list) and marts and all(isinstance(m, str) and m for m in marts):
            wanted = frozenset(marts)
        else:
            raise ValueError(f'{where} ({name}): marts must be "*" or a non-empty list of mart names')
        conn = BaseHook.get_connection(conn_id)
        if not conn.password:
            raise ValueError(f"{where} ({name}): connection {conn_id!r} has no password (the signing secret)")
        url = _url_from_connection(conn)
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where} ({name}): {url!r} is not an http(s) URL")
        attempts, backoff = entry.get("max_attempts", 5), entry.get("backoff_s", 2.0)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"{where} ({name}): max_attempts must be an integer >= 1")
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            raise ValueError(f"{where} ({name}): backoff_s must be a number >= 0")
        subscribers.append(Subscriber(name, url, conn.password, wanted, attempts, float(backoff)))
    return subscribers


# --- signatures -------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}." + body))``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_problem(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None, tolerance_s: int = 300
) -> str | None:
    """Why a request's signature is not acceptable (``None`` when it is): missing, malformed, stale, wrong.

    Header names are matched case-insensitively. The timestamp must be within ``tolerance_s`` of ``now``
    either way (a replayed old request is refused even with a correct signature).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE_HEADER.lower())
    stamp = lower.get(TIMESTAMP_HEADER.lower())
    if not signature or not stamp:
        return "missing signature or timestamp header"
    try:
        timestamp = int(stamp)
    except ValueError:
        return "malformed timestamp"
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return f"stale timestamp ({int(now - timestamp)} s away from now, tolerance {tolerance_s} s)"
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        return "signature does not match"
    return None


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None, tolerance_s: int = 300
) -> bool:
    """True when ``headers`` carry a fresh, correct signature of ``body`` under ``secret`` (constant-time)."""
    return signature_problem(secret, headers, body, now=now, tolerance_s=tolerance_s) is None


# --- events -----------------------------------------------------------------------------------------------


def export_id(result: ExportResult) -> str:
    """Identifies an export's content: mart, day and the checksums of its files.

    A re-run over unchanged data gives the same id (its files are byte-identical); changed data gives a new
    one, so a subscriber that already fetched the files can tell a true update from a redelivery.
    """
    parts = [result.mart, result.day.isoformat(), *sorted(f"{f.format}:{f.sha256}" for f in result.files)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def delivery_id(subscriber: str, result: ExportResult) -> str:
    """The ``X-Pulse-Delivery`` of one export for one subscriber: stable across retries and re-runs."""
    return hashlib.sha256(f"{subscriber}\n{export_id(result)}".encode()).hexdigest()[:32]


def export_event(result: ExportResult) -> dict[str, Any]:
    """The body of an ``export.completed`` notification (documented in docs/exports.md)."""
    return {
        "event": EVENT_EXPORT_COMPLETED,
        "export_id": export_id(result),
        "mart": result.mart,
        "day": result.day.isoformat(),
        "rows": result.rows,
        "directory": storage_url(result.directory),
        "manifest": storage_url(result.manifest_path),
        "files": [
            {
                "format": f.format,
                "url": storage_url(f.path),
                "rows": f.rows,
                "bytes": f.bytes,
                "sha256": f.sha256,
            }
            for f in result.files
        ],
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable in an event: {value!r}")


def event_body(event: Mapping[str, Any]) -> bytes:
    """The exact bytes posted (and signed): compact JSON, keys sorted, ASCII only."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=_json_default).encode()


# --- delivery ---------------------------------------------------------------------------------------------


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _read_snippet(response: Any, limit: int = 300) -> bytes:
    """The start of an answer's body, for the error message; best effort (a broken body is no reason to raise)."""
    try:
        return bytes(response.raw.read(limit, decode_content=True)) if response.raw else b""
    except Exception:  # reading the body of a failed answer must not fail the delivery bookkeeping
        return b""


def backoff_delay(
    attempt: int, backoff_s: float, max_backoff_s: float, rng: Callable[[], float] = random.random
) -> float:
    """The wait after failed attempt ``attempt`` (1-based): exponential, capped, with "equal jitter".

    ``base = min(max_backoff_s, backoff_s * 2 ** (attempt - 1))``, wait in ``[base / 2, base)``: spread out so
    many exports do not retry in lockstep, and never shorter than the previous wait's upper half.
    """
    base = min(max_backoff_s, backoff_s * 2 ** (attempt - 1))
    return base / 2 + rng() * base / 2


def deliver(
    subscriber: Subscriber,
    event: Mapping[str, Any],
    *,
    delivery_id: str,
    max_attempts: int = 5,
    backoff_s: float = 2.0,
    max_backoff_s: float = 60.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST ``event`` to ``subscriber``, signed, with retries; never raises for HTTP or network problems.

    ``event["event"]`` (e.g. ``export.completed``) goes into ``X-Pulse-Event``. The worst case is bounded:
    ``max_attempts`` requests of at most ``timeout_s`` per socket operation, and waits of at most
    ``max_backoff_s`` between them.
    """
    import requests

    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    kind = event.get("event")
    if not isinstance(kind, str) or not kind:
        raise ValueError("event['event'] must name the event (it becomes the X-Pulse-Event header)")
    body = event_body(event)
    status: int | None = None
    error: str | None = None
    attempt = 0
    with requests.Session() as session:
        for attempt in range(1, max_attempts + 1):
            timestamp = int(time.time())  # signed per attempt: a late retry is not refused as stale
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                EVENT_HEADER: kind,
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(subscriber.secret, timestamp, body),
            }
            wait: float | None = None
            try:
                response = session.post(
                    subscriber.url,
                    data=body,
                    headers=headers,
                    timeout=timeout_s,
                    allow_redirects=False,
                    stream=True,
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            except requests.RequestException as exc:
                # An invalid URL or the like: retrying cannot help.
                status, error = None, f"{type(exc).__name__}: {exc}"
                log.warning("webhook %s delivery %s: %s (permanent)", subscriber.name, delivery_id, error)
                return Delivery(subscriber.name, delivery_id, False, attempt, None, error, True)
            else:
                with response:
                    status = response.status_code
                    snippet = _read_snippet(response)
                    retry_after = response.headers.get("Retry-After")
                if 200 <= status < 300:
                    log.info(
                        "webhook %s delivery %s: HTTP %d after %d attempt(s)",
                        subscriber.name,
                        delivery_id,
                        status,
                        attempt,
                    )
                    return Delivery(subscriber.name, delivery_id, True, attempt, status, None, False)
                error = f"HTTP {status}: {snippet.decode('utf-8', 'replace').strip()}"[:300]
                if status not in RETRY_STATUSES:
                    log.warning("webhook %s delivery %s: %s (permanent)", subscriber.name, delivery_id, error)
                    return Delivery(subscriber.name, delivery_id, False, attempt, status, error, True)
                if status == 429 or status == 503:
                    wait = _retry_after(retry_after, time.time())
            log.warning(
                "webhook %s delivery %s attempt %d/%d failed: %s",
                subscriber.name,
                delivery_id,
                attempt,
                max_attempts,
                error,
            )
            if attempt < max_attempts:
                delay = (
                    backoff_delay(attempt, backoff_s, max_backoff_s)
                    if wait is None
                    else min(wait, max_backoff_s)
                )
                sleep(delay)
    return Delivery(subscriber.name, delivery_id, False, attempt, status, error, False)


def deliver_all(subscribers: Iterable[Subscriber], result: ExportResult, **kwargs: Any) -> list[Delivery]:
    """Notify every subscriber that wants ``result.mart`` about it (one :func:`deliver` each)."""
    event = export_event(result)
    return [
        deliver(s, event, delivery_id=delivery_id(s.name, result), **kwargs)
        for s in subscribers
        if s.wants(result.mart)
    ]

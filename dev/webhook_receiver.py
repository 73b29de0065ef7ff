"""A local receiver for Pulse's signed export webhooks: verifies, records and dedupes deliveries.

``POST /<any path>`` is a delivery: the signature is checked with :func:`pulse.export.webhooks.verify_signature`
(401 with the reason when it is missing, malformed, stale or wrong), the JSON body is recorded with its
headers, and a redelivery (an ``X-Pulse-Delivery`` seen before) is acknowledged with 200 but recorded once
and counted. Failure switches make it misbehave for tests: the next *n* deliveries answer a status (with an
optional ``Retry-After``), every delivery answers a status, or the next *n* deliveries stall without an answer
(the sender's timeout fires).

Over HTTP, for the local stack and end-to-end runs in another process: ``GET /_deliveries`` returns what was
recorded and the counters, ``DELETE /_deliveries`` clears them, ``POST /_control`` with
``{"fail_next": n, "status": 500, "retry_after": 3}``, ``{"fail_always": 503}`` (``null`` to stop),
``{"stall_next": n, "seconds": 30}`` or ``{"reset": true}`` sets the switches. With ``--out`` every accepted
delivery is also appended to a JSON Lines file. Tests use :class:`WebhookReceiver` in a thread.

``python -m dev.webhook_receiver --port P --secret-env VAR --out file.jsonl``: the signing secret is read from
the environment variable VAR, never from the command line (where ``ps`` would show it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    from pulse.export.webhooks import DELIVERY_HEADER, signature_problem
except ModuleNotFoundError:  # started from the repository root without PYTHONPATH=.:plugins
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))
    from pulse.export.webhooks import DELIVERY_HEADER, signature_problem

MAX_BODY = 10 * 1024 * 1024


class WebhookReceiver:
    """The receiver as an object: ``start()``, ``url``, ``deliveries``, ``clear()``, switches, ``stop()``.

    Counters: ``received`` (every delivery request, failed or not), ``rejected`` (refused signatures),
    ``redeliveries`` (accepted again under a known delivery id, not recorded twice).
    """

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        out: Path | str | None = None,
        tolerance_s: int = 300,
    ) -> None:
        self._secret = secret
        self._tolerance_s = tolerance_s
        self._out = Path(out) if out else None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._deliveries: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._received = self._rejected = self._redeliveries = 0
        self._failures: deque[tuple[int, float | None]] = deque()
        self._fail_always: int | None = None
        self._stalls: deque[float] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, code: int, body: bytes, ctype: str = "text/plain", extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, payload: Any) -> None:
                self._send(code, json.dumps(payload).encode(), "application/json")

            def _body(self) -> bytes | None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, b"body too large")
                    return None
                return self.rfile.read(length)

            def do_POST(self) -> None:
                raw = self._body()
                if raw is None:
                    return
                if self.path.startswith("/_control"):
                    try:
                        receiver._control(json.loads(raw or b"{}"))
                    except (ValueError, TypeError, KeyError) as exc:
                        self._send(400, f"bad control request: {exc}".encode())
                        return
                    self._json(200, receiver.state())
                    return
                action = receiver._next_action()
                if action[0] == "stall":
                    receiver._stopping.wait(action[1])
                    self.close_connection = True  # no answer at all: the sender's timeout fires
                    return
                if action[0] == "fail":
                    status, retry_after = action[1], action[2]
                    extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
                    self._send(int(status), b"simulated failure", extra=extra)
                    return
                problem = signature_problem(
                    receiver._secret, dict(self.headers.items()), raw, tolerance_s=receiver._tolerance_s
                )
                if problem:
                    receiver._count_rejected()
                    self._send(401, f"signature refused: {problem}".encode())
                    return
                delivery_id = self.headers.get(DELIVERY_HEADER)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, b"body is not JSON")
                    return
                if not delivery_id:
                    self._send(400, f"no {DELIVERY_HEADER} header".encode())
                    return
                duplicate = receiver._record(self.path, delivery_id, dict(self.headers.items()), body)
                self._json(200, {"ok": True, "duplicate": duplicate})

            def do_GET(self) -> None:
                if self.path.startswith("/_deliveries"):
                    self._json(200, {**receiver.state(), "deliveries": receiver.deliveries})
                else:
                    self._send(404, b"not found")

            def do_DELETE(self) -> None:
                if self.path.startswith("/_deliveries"):
                    receiver.clear()
                    self._send(200, b"cleared")
                else:
                    self._send(404, b"not found")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- state ---

    def _next_action(self) -> tuple[Any, ...]:
        with self._lock:
            self._received += 1
            if self._stalls:
                return ("stall", self._stalls.popleft())
            if self._failures:
                return ("fail", *self._failures.popleft())
            if self._fail_always is not None:
                return ("fail", self._fail_always, None)
            return ("accept",)

    def _count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def _record(self, path: str, delivery_id: str, headers: dict[str, str], body: Any) -> bool:
        """Record a verified delivery; return True (and record nothing) when its id was seen before."""
        with self._lock:
            if delivery_id in self._seen:
                self._redeliveries += 1
                return True
            self._seen.add(delivery_id)
            entry = {
                "received_at": datetime.now(tz=UTC).isoformat(),
                "path": path,
                "delivery_id": delivery_id,
                "headers": headers,
                "body": body,
            }
            self._deliveries.append(entry)
            if self._out:
                self._out.parent.mkdir(parents=True, exist_ok=True)
                with self._out.open("a") as fh:
                    fh.write(json.dumps(entry) + "\n")
            return False

    def _control(self, command: dict[str, Any]) -> None:
        if command.get("reset"):
            self.reset()
        if "fail_next" in command:
            self.fail_next(
                int(command["fail_next"]), int(command.get("status", 500)), command.get("retry_after")
            )
        if "fail_always" in command:
            status = command["fail_always"]
            self.fail_always(None if status is None else int(status))
        if "stall_next" in command:
            self.stall_next(int(command["stall_next"]), float(command.get("seconds", 30.0)))

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Accepted deliveries, once each, in arrival order: ``{received_at, path, delivery_id, headers, body}``."""
        with self._lock:
            return list(self._deliveries)

    @property
    def received(self) -> int:
        with self._lock:
            return self._received

    @property
    def rejected(self) -> int:
        with self._lock:
            return self._rejected

    @property
    def redeliveries(self) -> int:
        with self._lock:
            return self._redeliveries

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "received": self._received,
                "rejected": self._rejected,
                "redeliveries": self._redeliveries,
                "accepted": len(self._deliveries),
                "pending_failures": len(self._failures),
                "fail_always": self._fail_always,
                "pending_stalls": len(self._stalls),
            }

    def clear(self) -> None:
        """Forget deliveries, delivery ids seen and counters (the switches stay)."""
        with self._lock:
            self._deliveries.clear()
            self._seen.clear()
            self._received = self._rejected = self._redeliveries = 0

    # --- failure switches ---

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next ``n`` deliveries with ``status`` (and ``Retry-After`` when given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def fail_always(self, status: int | None) -> None:
        """Answer every delivery with ``status`` until called with ``None``."""
        with self._lock:
            self._fail_always = status

    def stall_next(self, n: int, seconds: float = 30.0) -> None:
        """Hold the next ``n`` deliveries ``seconds`` without answering, then drop the connection."""
        with self._lock:
            self._stalls.extend([seconds] * n)

    def reset(self) -> None:
        """Turn every switch off."""
        with self._lock:
            self._failures.clear()
            self._stalls.clear()
            self._fail_always = None

    # --- server ---

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled handlers
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--secret-env", required=True, help="environment variable holding the signing secret")
    parser.add_argument(
        "--out", type=Path, default=None, help="append accepted deliveries to this JSON Lines file"
    )
    parser.add_argument(
        "--tolerance", type=int, default=300, help="accepted clock skew of X-Pulse-Timestamp, s"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback address (a container on its network)",
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        parser.error("the receiver listens on loopback only; pass --allow-remote")
    secret = os.environ.get(args.secret_env)
    if not secret:
        parser.error(f"environment variable {args.secret_env} is not set or empty")
    rec = WebhookReceiver(secret, args.host, args.port, args.out, args.tolerance)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=rec.stop).start())
    print(f"webhook receiver listening on {rec.url}", flush=True)
    rec.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local stand-in for Slack's incoming webhooks: records every post, answers like Slack.

``POST /<anything>`` with a JSON body is recorded (path, headers, body) and answered ``ok``;
``GET /_messages`` returns the recorded posts as JSON; ``DELETE /_messages`` clears them. With ``--record``
every post is also appended to a JSON Lines file. Tests use :class:`SlackReceiver` in a thread.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class SlackReceiver:
    """The receiver as an object: ``start()``, ``url``, ``messages()``, ``clear()``, ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, record: Path | None = None) -> None:
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._record = record
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                receiver._add({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path.startswith("/api/"):
                    self._send(200, b'{"ok": true}', "application/json")
                else:
                    self._send(200, b"ok")

            def do_GET(self) -> None:
                if self.path.startswith("/_messages"):
                    self._send(200, json.dumps(receiver.messages()).encode(), "application/json")
                else:
                    self._send(404, b"not found")

            def do_DELETE(self) -> None:
                receiver.clear()
                self._send(200, b"cleared")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    def _add(self, msg: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(msg)
            if self._record:
                self._record.parent.mkdir(parents=True, exist_ok=True)
                with self._record.open("a") as fh:
                    fh.write(json.dumps(msg) + "\n")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def texts(self, route: str | None = None) -> list[str]:
        """Texts posted, oldest first; ``route`` keeps those posted to a webhook path ending in ``/ROUTE``."""
        return [
            str(m["body"].get("text", ""))
            for m in self.messages()
            if isinstance(m["body"], dict)
            and (route is None or m["path"].upper().endswith("/" + route.upper()))
        ]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def start(self) -> SlackReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback address (a container on its network)",
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        parser.error("the receiver listens on loopback only; pass --allow-remote")
    rec = SlackReceiver(args.host, args.port, args.record)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=rec.stop).start())
    print(f"slack receiver listening on {rec.url}", flush=True)
    rec.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

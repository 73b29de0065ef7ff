"""CLI: ``python -m dev.simulator --host 127.0.0.1 --port 8765 --seed 42 [--now ISO] [--config JSON] [--spike JSON]``.

Prints ``simulator listening on http://HOST:PORT`` once bound, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from dev.simulator.core import SimulatorServer, is_loopback_host


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m dev.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = pick a free one)")
    parser.add_argument("--seed", type=int, default=42, help="seed of all generated content")
    parser.add_argument(
        "--now", default=None, help="fixed clock (ISO-8601 or epoch seconds); default: real time"
    )
    parser.add_argument(
        "--config", default=None, help='initial config as JSON, e.g. \'{"reddit": {"posts_per_hour": 30}}\''
    )
    parser.add_argument(
        "--spike",
        default=None,
        help='raise one term\'s volume and tone over given hours, e.g. \'{"term": "flu", "start": '
        '"2026-11-28T10:00Z", "end": "2026-11-28T14:00Z", "factor": 5, "tone": "negative", '
        '"sources": ["x", "reddit", "newsapi"]}\' (dev/simulator/text.py)',
    )
    parser.add_argument(
        "--playback", default=None, help="folder of recorded responses: <dir>/<source>/<endpoint>/NNN.json"
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGTERM/SIGINT; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        print(f"refusing to listen on non-loopback host {args.host!r}; pass --allow-remote", file=sys.stderr)
        return 2
    try:
        sim = SimulatorServer(
            host=args.host,
            port=args.port,
            seed=args.seed,
            now=args.now,
            allow_remote=True,
            playback=args.playback,
        )
        if args.config:
            sim.configure(json.loads(args.config))
        if args.spike:
            sim.configure({"spike": json.loads(args.spike)})
    except ValueError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sim.start()
    print(f"simulator listening on {sim.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

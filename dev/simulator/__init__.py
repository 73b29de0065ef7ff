"""The source simulator: a deterministic local HTTP server imitating the APIs Pulse collects from.

Usage::

    from dev.simulator import SimulatorServer

    sim = SimulatorServer(port=0, seed=42, now="2026-11-28T12:00:00Z").start()
    sim.url                                  # http://127.0.0.1:<port>
    sim.configure({"reddit": {"rate_limit": {"count": 2}}})
    sim.stats()["reddit"]["served_count"]
    sim.stop()

Or from a shell: ``python -m dev.simulator --port 8765``. See ``core.py`` for the generic machinery and one
module per API (``reddit.py``) for the simulated endpoints.
"""

from __future__ import annotations

from dev.simulator.core import SimulatorServer, Source, register_source

__all__ = ["SimulatorServer", "Source", "register_source"]

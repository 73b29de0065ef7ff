"""Test lanes: every test that needs a service the suite starts (PostgreSQL, Airflow's metadata DB, the session's
simulator, moto, a live stack) is marked ``slow``; the rest form the fast lane, ``make test-fast``
(``pytest -m "not slow"``).

The mark is derived, never written by hand: a test is slow when it (or a fixture it uses, at any depth) requests
one of :data:`SLOW_FIXTURES`, when it carries the ``e2e`` mark, or when it lives under ``tests/stack``. So a new
test directory or file is in one lane or the other automatically, nothing is dropped: ``make test`` runs both lanes, ``make test-fast`` every test no
service-bound fixture reaches. Registered through ``-p tests.lanes`` in pyproject.toml's pytest ``addopts``.

``make test`` runs the suite in two pytest-xdist processes (``-n 2 --dist loadscope --no-loadscope-reorder``):
the live-stack modules (``tests/stack``: each starts a whole private stack and mostly waits on Airflow) form
one work unit, :data:`LIVE_STACK_GROUP` (:func:`pytest_xdist_make_scheduler`), put first in the collection so
that one process takes them from the start while the other runs every other module (each module one unit:
its module-scoped fixtures are set up once).
Each process has its own session fixtures (tests/conftest.py: its own folder, PostgreSQL and ports).
"""

from __future__ import annotations

from typing import Any

import pytest

#: Session fixtures of tests/conftest.py (and those built on them) that start or need a real service.
SLOW_FIXTURES = frozenset(
    {
        "warehouse",  # a throw-away PostgreSQL cluster, migrated
        "db",
        "fresh_db",
        "airflow_db",  # Airflow's metadata DB, migrated (dag.test() runs need it)
        "simulator",  # the session's simulator, used by the end-to-end runs
        "sim",
        "s3",  # a moto server
    }
)


#: The xdist group of every test under tests/stack (see the module docstring).
LIVE_STACK_GROUP = "live-stack"
STACK_DIR = "tests/stack/"


def is_slow(item: pytest.Item) -> bool:
    """Whether ``item`` belongs to the slow lane (see the module docstring)."""
    names = set(getattr(item, "fixturenames", ()))
    # Every module under tests/stack starts a whole stack (test_live_celery.py once ran in the fast lane for
    # want of an e2e mark, and failed there on a machine without redis-server, which only make test installs).
    in_stack = item.nodeid.startswith(STACK_DIR)
    return bool(names & SLOW_FIXTURES) or item.get_closest_marker("e2e") is not None or in_stack


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: needs a service the suite starts (derived by tests/lanes.py; not in make test-fast)"
    )


def scope_of(nodeid: str) -> str:
    """The work unit of a test under ``make test``'s scheduler: the live-stack modules together, else its module."""
    path = nodeid.partition("::")[0]
    return LIVE_STACK_GROUP if path.startswith(STACK_DIR) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadscope`` (``make test``): xdist's module scheduling with the live-stack modules as one
    unit (:func:`scope_of`). pytest-xdist 3.8's own ``--dist loadgroup`` did not group here under pytest 9.2
    (two tests marked with one ``xdist_group`` ran on two workers), so the scope is decided here."""
    if getattr(config.option, "dist", "no") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LiveStackScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return LiveStackScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):  # an xdist worker: its collection order is the scheduler's work order
        # The live stacks first (a stable sort): the process that takes them starts at once.
        items.sort(key=lambda item: scope_of(item.nodeid) != LIVE_STACK_GROUP)

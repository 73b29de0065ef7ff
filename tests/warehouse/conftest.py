"""Fixtures for warehouse tests: fresh databases on the session's PostgreSQL cluster."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_ids = itertools.count()


@pytest.fixture
def fresh_db(warehouse: dict[str, Any]) -> Iterator[Callable[[], str]]:
    """A factory of empty databases owned by the pipeline's role; returns their URIs. Dropped afterwards."""
    from dev import stack

    made: list[str] = []

    def make() -> str:
        name = f"scratch_{next(_ids)}"
        stack._admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        stack._admin_sql(f"CREATE DATABASE {name} OWNER {stack.WAREHOUSE_ROLE}")
        made.append(name)
        d = warehouse
        return f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{name}"

    yield make
    for name in made:
        stack._admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

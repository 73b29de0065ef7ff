"""The test lanes (tests/lanes.py) stay true: every service-bound fixture they key on exists, and the lanes split the
suite without a gap (``-m slow`` and ``-m "not slow"`` select complementary sets by construction)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lanes import SLOW_FIXTURES, is_slow

TESTS = Path(__file__).resolve().parents[1]


def _fixtures_defined() -> set[str]:
    names: set[str] = set()
    for conftest in TESTS.rglob("conftest.py"):
        for node in ast.walk(ast.parse(conftest.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and any(
                "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
            ):
                names.add(node.name)
    return names


def test_every_slow_fixture_exists() -> None:
    """A renamed service fixture would let its tests slip into the fast lane unnoticed."""
    assert _fixtures_defined() >= SLOW_FIXTURES, SLOW_FIXTURES - _fixtures_defined()


def test_a_test_is_slow_by_its_fixtures_or_the_e2e_mark(request: pytest.FixtureRequest) -> None:
    class Item:
        def __init__(self, fixtures: list[str], marks: list[str]) -> None:
            self.fixturenames = fixtures
            self.marks = marks

        def get_closest_marker(self, name: str) -> object | None:
            return name if name in self.marks else None

    assert not is_slow(Item(["tmp_path", "monkeypatch"], []))  # type: ignore[arg-type]
    assert is_slow(Item(["tmp_path", "warehouse"], []))  # type: ignore[arg-type]
    assert is_slow(Item(["sim"], []))  # type: ignore[arg-type]
    assert is_slow(Item([], ["e2e"]))  # type: ignore[arg-type]
    assert not is_slow(request.node)  # this very test is in the fast lane

"""The test lanes (tests/lanes.py) stay true: every service-bound fixture they key on exists, and the lanes split the
suite without a gap (``-m slow`` and ``-m "not slow"`` select complementary sets by construction)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lanes import LIVE_STACK_GROUP, SLOW_FIXTURES, is_slow, xdist_group

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


def test_make_test_puts_the_live_stacks_in_one_group_first() -> None:
    """Under ``--dist loadgroup`` (``make test``) the live-stack modules form one xdist group and come first, so
    one process takes them at once; every other module is a group of its own."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            "--dist",
            "loadgroup",
            "tests/policy/test_lanes.py",
            "tests/stack/test_live_connections.py",
            "tests/stack/test_stack_lifecycle.py",
        ],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    ids = [line for line in out.splitlines() if "::" in line]
    first_other = next(i for i, nodeid in enumerate(ids) if not nodeid.startswith("tests/stack/"))
    assert first_other > 0 and all(not n.startswith("tests/stack/") for n in ids[first_other:]), ids

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    assert xdist_group(Item("tests/stack/test_worker_kill.py::test_x")) == LIVE_STACK_GROUP  # type: ignore[arg-type]
    assert xdist_group(Item("tests/e2e/test_enrich.py::test_y[a]")) == "tests/e2e/test_enrich.py"  # type: ignore[arg-type]

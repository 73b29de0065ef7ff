"""The test lanes (tests/lanes.py) stay true: every service-bound fixture they key on exists, and the lanes split the
suite without a gap (``-m slow`` and ``-m "not slow"`` select complementary sets by construction)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.lanes import LIVE_STACK_GROUP, SLOW_FIXTURES, is_slow, scope_of

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
        def __init__(
            self, fixtures: list[str], marks: list[str], nodeid: str = "tests/unit/test_x.py::t"
        ) -> None:
            self.fixturenames = fixtures
            self.marks = marks
            self.nodeid = nodeid

        def get_closest_marker(self, name: str) -> object | None:
            return name if name in self.marks else None

    assert not is_slow(Item(["tmp_path", "monkeypatch"], []))  # type: ignore[arg-type]
    assert is_slow(Item(["tmp_path", "warehouse"], []))  # type: ignore[arg-type]
    assert is_slow(Item(["sim"], []))  # type: ignore[arg-type]
    assert is_slow(Item([], ["e2e"]))  # type: ignore[arg-type]
    assert is_slow(Item([], [], "tests/stack/test_live_celery.py::test_a"))  # type: ignore[arg-type]
    assert not is_slow(request.node)  # this very test is in the fast lane


def test_make_test_puts_the_live_stacks_in_one_unit_first() -> None:
    """Under ``make test`` (``-n 2 --dist loadscope --no-loadscope-reorder``) the tests of two live-stack modules
    run in one worker, before anything else that worker runs; every other module is a unit of its own."""
    import subprocess
    import sys

    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-v",
            "-n",
            "2",
            "--dist",
            "loadscope",
            "--no-loadscope-reorder",
            "tests/policy/test_lanes.py::test_every_slow_fixture_exists",
            "tests/policy/test_one_clock.py",
            "tests/stack/test_stack_lifecycle.py::test_a_zombie_counts_as_stopped",
            "tests/stack/test_live_journeys.py::test_simulator_counts_requests_in_flight_per_source",
        ],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    done = [line.split() for line in ran.splitlines() if line.startswith("[gw") and " PASSED " in line]
    stack = {words[0] for words in done if words[-1].startswith("tests/stack/")}
    assert len(stack) == 1 and sum(w[-1].startswith("tests/stack/") for w in done) == 2, ran
    (worker,) = stack
    mine = [w[-1] for w in done if w[0] == worker]
    assert mine[0].startswith("tests/stack/") and mine[1].startswith("tests/stack/"), ran

    assert scope_of("tests/stack/test_worker_kill.py::test_x") == LIVE_STACK_GROUP
    assert scope_of("tests/e2e/test_enrich.py::test_y[a]") == "tests/e2e/test_enrich.py"

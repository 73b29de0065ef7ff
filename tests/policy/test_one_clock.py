"""The pipeline clock (``pulse.windows.utcnow``) is the only clock pipeline code reads.

Why: the suite pins the pipeline clock (``PULSE_NOW``) and the simulator's; code that read the machine's clock
directly made the suite pass only in November (issue 12). This test parses every module of the pipeline (DAG
files and the ``pulse`` package) and fails on any direct read of the machine's clock outside the short list
below, each with its reason. Bookkeeping timestamps written by PostgreSQL (``now()`` in ``loaded_at``,
``audited_at`` ...) record when something happened on the database's clock and are compared only with each
other; they are not data-time decisions and are not scanned.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Calls that read the machine's clock.
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("pendulum", "now"),
    ("timezone", "utcnow"),
}

#: (file, function) -> why it reads the machine's clock on purpose.
ALLOWED = {
    ("plugins/pulse/windows.py", "utcnow"): "the pipeline clock itself, when PULSE_NOW is not set",
    ("plugins/pulse/hooks/base.py", "now"): (
        "rate-limit reset epochs and Retry-After dates are on the source's clock: the response's Date header "
        "is used, the local clock only when a response has none"
    ),
    ("plugins/pulse/export/webhooks.py", "signature_problem"): (
        "HMAC signature timestamps are checked against the partner's real clock (replay protection)"
    ),
    ("plugins/pulse/export/webhooks.py", "deliver"): "signature timestamp per attempt, Retry-After HTTP date",
    ("plugins/pulse/enrich/train_sentiment.py", "train"): "when an offline model was trained (metadata)",
}


def _clock_reads(path: Path) -> list[tuple[str, int]]:
    """``(enclosing function, line)`` of every direct clock read in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                target = child.func.value
                owner = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                if (owner, child.func.attr) in CLOCK_CALLS:
                    found.append((scope, child.lineno))
            visit(child, inner)

    visit(tree, "<module>")
    return found


def _pipeline_files() -> list[Path]:
    return sorted([*(ROOT / "plugins" / "pulse").rglob("*.py"), *(ROOT / "dags").glob("*.py")])


def test_pipeline_code_reads_only_the_pipeline_clock() -> None:
    offenders = []
    for path in _pipeline_files():
        rel = path.relative_to(ROOT).as_posix()
        for scope, line in _clock_reads(path):
            if (rel, scope) not in ALLOWED:
                offenders.append(f"{rel}:{line} in {scope}()")
    assert not offenders, (
        "read the pipeline clock (pulse.windows.utcnow) instead of the machine's:\n" + "\n".join(offenders)
    )


def test_the_scan_finds_clock_reads(tmp_path: Path) -> None:
    """The scanner itself: each form of a clock read is found, with its enclosing function."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time, datetime as dt\nfrom datetime import datetime, date, UTC\n"
        "def a():\n    return datetime.now(tz=UTC)\n"
        "def b():\n    return time.time()\n"
        "def c():\n    return dt.datetime.now()\n"
        "def d():\n    return date.today()\n"
        "x = datetime.utcnow()\n"
        "def e():\n    return datetime.fromisoformat('2026-01-01')\n"
    )
    assert _clock_reads(sample) == [("a", 4), ("b", 6), ("c", 8), ("d", 10), ("<module>", 11)]


def test_every_allowance_is_still_needed() -> None:
    """An allowance whose clock read is gone must be removed, so the list stays the truth."""
    used = {
        (path.relative_to(ROOT).as_posix(), scope)
        for path in _pipeline_files()
        for scope, _ in _clock_reads(path)
    }
    assert set(ALLOWED) <= used, f"stale allowances: {sorted(set(ALLOWED) - used)}"

"""Enrichment runs offline: a fresh process with every socket connect and DNS look-up made to fail, and HOME
(and the caches under it) pointing at an empty directory, loads every model and lexicon and enriches documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, socket, sys

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network disabled by test_offline")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from datetime import UTC, datetime
from pulse.enrich import EnrichInput, component_versions, enrich_documents

when = datetime(2026, 11, 28, tzinfo=UTC)
docs = [
    EnrichInput(("x", "1", when), "x", "tweet", None, "Apple is amazing! Tim Cook in Paris today $AAPL 🚀", None),
    EnrichInput(("reddit", "2", when), "reddit", "post", "Storm in Texas",
                 "I am so angry and sad: flooding in Houston again, the worst.", None),
    EnrichInput(("x", "3", when), "x", "tweet", None, "El gobierno anuncia nuevas medidas económicas", None),
]
res = enrich_documents(docs)
print(json.dumps({
    "attempts": attempts,
    "errors": [e.error for e in res.errors],
    "languages": [f.language for f in res.features],
    "labels": [f.sentiment_label for f in res.features],
    "topics": [f.topic for f in res.features],
    "entities": [e.normalized for e in res.entities],
    "places": [p.name for p in res.places],
    "versions": sorted(component_versions()),
}))
"""


def test_enrichment_runs_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["attempts"] == []
    assert res["errors"] == []
    assert res["languages"] == ["en", "en", "es"]
    assert res["labels"][0] == "positive"
    assert res["labels"][1] == "negative"
    assert res["topics"][1] == "weather_climate"
    assert {"Apple Inc.", "Tim Cook", "Paris", "Texas", "Houston"} <= set(res["entities"])
    assert res["entities"].count("Apple Inc.") == 2  # "Apple" and "$AAPL" link to one canonical name
    assert {"Paris", "Texas", "Houston"} <= set(res["places"])
    assert "sentiment_model" in res["versions"]
    assert list(home.iterdir()) == []  # nothing cached or downloaded under HOME

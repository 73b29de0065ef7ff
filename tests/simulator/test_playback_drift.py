"""Simulator extras: recorded-folder playback, schema drift, duplicates across pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer


@pytest.fixture
def server(tmp_path: Path) -> Any:
    sim = SimulatorServer(port=0, seed=7, now="2026-11-28T12:00:00Z", playback=tmp_path / "rec").start()
    yield sim
    sim.stop()


def _token(sim: Any) -> dict[str, str]:
    resp = requests.post(
        f"{sim.url}/api/v1/access_token",
        auth=("sim-client-id", "sim-client-secret"),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    return {"Authorization": f"bearer {resp.json()['access_token']}"}


def test_playback_serves_recorded_files_in_order_then_falls_back(server: Any, tmp_path: Path) -> None:
    folder = tmp_path / "rec" / "reddit" / "r" / "python" / "new"
    folder.mkdir(parents=True)
    (folder / "001.json").write_text('{"kind": "Listing", "data": {"children": [], "after": null}}')
    (folder / "002.json").write_text('{"message": "Too Many Requests", "error": 429}')
    (folder / "002.status").write_text("429")
    (folder / "002.headers.json").write_text(json.dumps({"Retry-After": "3"}))
    headers = _token(server)
    first = requests.get(f"{server.url}/r/python/new", headers=headers, timeout=5)
    second = requests.get(f"{server.url}/r/python/new?after=x", headers=headers, timeout=5)
    third = requests.get(f"{server.url}/r/python/new", headers=headers, timeout=5)
    assert first.status_code == 200
    assert first.json()["data"]["children"] == []
    assert (second.status_code, second.headers["Retry-After"]) == (429, "3")
    assert third.status_code == 200
    assert len(third.json()["data"]["children"]) == 25, "after the recording the generator answers again"


def test_schema_drift_renames_and_drops_fields(server: Any) -> None:
    headers = _token(server)
    server.configure({"reddit": {"drift": {"rename": {"selftext": "self_text"}, "drop": ["title"]}}})
    data = requests.get(f"{server.url}/r/python/new?limit=3", headers=headers, timeout=5).json()
    item = data["data"]["children"][0]["data"]
    assert "self_text" in item
    assert "selftext" not in item
    assert "title" not in item
    server.reset()
    item = requests.get(f"{server.url}/r/python/new?limit=3", headers=headers, timeout=5).json()
    assert "title" in item["data"]["children"][0]["data"]
    with pytest.raises(ValueError, match=r"reddit\.drift"):
        server.configure({"reddit": {"drift": {"rename": ["x"]}}})


def test_duplicates_across_pages_repeat_the_previous_last_item(server: Any) -> None:
    headers = _token(server)
    server.configure({"reddit": {"duplicate_across_pages": True}})
    first = requests.get(f"{server.url}/r/python/new?limit=5", headers=headers, timeout=5).json()["data"]
    second = requests.get(
        f"{server.url}/r/python/new?limit=5&after={first['after']}", headers=headers, timeout=5
    ).json()["data"]
    assert second["children"][0]["data"]["name"] == first["children"][-1]["data"]["name"]
    assert len({c["data"]["name"] for c in first["children"] + second["children"]}) == 9

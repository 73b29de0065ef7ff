from __future__ import annotations

from pathlib import Path

import pytest

from pulse.config import ConfigError, load_source_config
from pulse.privacy import MissingPseudonymKeyError, make_pseudonymizer, pseudonym_key


def test_pseudonyms_are_stable_keyed_and_source_scoped() -> None:
    a = make_pseudonymizer("reddit", key=b"one")
    assert a("alice") == a("alice") != make_pseudonymizer("reddit", key=b"two")("alice")
    assert a("alice") != make_pseudonymizer("x", key=b"one")("alice")
    assert len(a("alice") or "") == 32 and "alice" not in (a("alice") or "")
    assert a(None) is None and a("") is None


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_PULSE_PSEUDONYM", raising=False)
    with pytest.raises(MissingPseudonymKeyError, match="PULSE_PSEUDONYM_KEY"):
        pseudonym_key("pulse_pseudonym_absent")


def test_shipped_sources_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_source_config("reddit", root / "include" / "sources.yaml")
    assert cfg.subreddits and set(cfg.listings) <= {"new", "comments"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reddit: {subreddits: []}", r"reddit\.subreddits: expected a non-empty list"),
        ("reddit: {subreddits: [ok, 'bad name!']}", r"reddit\.subreddits\[1\]"),
        ("reddit: {subreddits: [ok], listings: [hot]}", r"reddit\.listings\[0\]"),
        ("reddit: {subreddits: [ok], page_size: 500}", r"reddit\.page_size"),
        ("reddit: {subreddits: [ok], colour: red}", r"unknown keys \['colour'\]"),
        ("other: {}", "no entry for source 'reddit'"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_source_config("reddit", path)

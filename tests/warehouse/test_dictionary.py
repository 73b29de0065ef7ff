"""The checked-in data dictionary is what the migrated database says, and everything is commented."""

from __future__ import annotations

from typing import Any

from pulse.warehouse.dictionary import DEFAULT_OUTPUT, generate, missing_comments


def test_every_schema_table_view_and_column_has_a_comment(db: Any) -> None:
    assert missing_comments(db) == []


def test_checked_in_dictionary_is_up_to_date(db: Any) -> None:
    expected = generate(db)
    current = DEFAULT_OUTPUT.read_text() if DEFAULT_OUTPUT.exists() else ""
    assert current == expected, f"{DEFAULT_OUTPUT} is out of date: run `make dictionary` and commit it"


def test_dictionary_says_who_may_read_what(db: Any) -> None:
    text = generate(db)
    section = text.split("### `raw.api_responses`")[1].split("###")[0]
    assert "analyst: no" in section
    section = text.split("### `core.documents`")[1].split("###")[0]
    assert "analyst: no" in section and "partitioned by month: `RANGE (created_at)`" in section
    for relation in ("published.documents", "analytics.source_health"):
        section = text.split(f"### `{relation}`")[1].split("###")[0]
        assert "*view* · analyst: yes" in section
    assert "## Schema `published`" in text

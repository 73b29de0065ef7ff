"""Property tests: arbitrary JSON and Unicode thrown at every source parser finds nothing but quarantine reasons.

For any page of hostile items (tests/sources/hostile_inputs.py) every parser yields exactly one output per item,
in order; an output is a document or fact whose every value PostgreSQL accepts as it is (the loader's row
builder either takes it or refuses it with a reason), or a quarantine record whose key, detail and item can be
written. Nothing else is raised; a body that is not a page at all is a ``MalformedPageError``. The paging bounds
the hooks read (how far back a page reached) are usable times or None.

Deterministic and bounded: ``derandomize=True``, a few dozen examples per source, no deadline.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.privacy import make_pseudonymizer
from pulse.sources.base import (
    SOURCES,
    Document,
    Fact,
    ItemError,
    MalformedPageError,
    Page,
    Reason,
    Rejected,
    Stream,
)
from pulse.warehouse import pgtypes
from pulse.warehouse.loader import document_row, fact_row
from tests.sources.hostile_inputs import (
    NOW,
    SHAPES,
    body_text,
    grid_values,
    leaf_paths,
    pages,
    raw_bodies,
    with_value,
)
from tests.sources.hostile_inputs import SOURCES as SHAPED

HOSTILE = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

assert set(SHAPED) == set(SOURCES), "every source needs hostile page shapes"


def _parse(page: Any) -> list[tuple[int, Any]]:
    parser = SOURCES[page.source].parser_module()
    return list(parser.parse_page(page, make_pseudonymizer(page.source, key=b"k"), NOW))


def _storable(text: str) -> None:
    assert "\x00" not in text
    text.encode("utf-8")  # no lone surrogate


def _check_output(out: Any) -> None:
    if isinstance(out, Rejected):
        assert isinstance(out.reason, Reason)
        assert isinstance(out.item_key, str) and out.item_key
        assert out.external_id is None or isinstance(out.external_id, str)
        key = pgtypes.storable_key(out.item_key)
        _storable(key)
        assert len(key.encode()) <= pgtypes.MAX_KEY_BYTES
        _storable(out.detail)
        assert len(out.detail) < 2 * pgtypes.MAX_DETAIL_CHARS
        item = pgtypes.storable_json(out.item)
        _storable(item)
        json.loads(item)
        assert "\\u0000" not in item.replace("\\\\", "")  # jsonb refuses the \u0000 escape
        return
    try:
        row = document_row(out, 1, "run") if isinstance(out, Document) else fact_row(out, 1, "run")
    except ItemError as exc:  # the loader refuses it: a quarantine reason, never another error
        refusal = exc
    else:
        refusal = None
    if refusal is not None:
        assert isinstance(refusal.reason, Reason)
        _storable(refusal.detail)
        return
    assert isinstance(out, Document | Fact)
    for value in row:
        if isinstance(value, str):
            _storable(value)
        elif isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, int):
            assert -(2**63) <= value < 2**63


@pytest.mark.parametrize("source", sorted(SHAPES))
@HOSTILE
@given(data=st.data())
def test_any_page_of_hostile_items_gives_one_output_per_item_and_only_reasons(source: str, data: Any) -> None:
    page, count = data.draw(pages(source))
    try:
        outputs = _parse(page)
    except MalformedPageError:
        # Only where an item is the whole body (a repository, the current weather) can it break the page.
        assert page.stream.startswith(("repo:", "current:")), page.body[:300]
        return
    assert [i for i, _ in outputs] == list(range(count))
    for _, out in outputs:
        _check_output(out)
    # Parsing twice gives the same outputs (re-loading gives the same rows).
    again = _parse(page)
    assert [_fingerprint(o) for _, o in again] == [_fingerprint(o) for _, o in outputs]


def _fingerprint(out: Any) -> Any:
    if isinstance(out, Rejected):
        return ("rejected", out.reason, out.item_key, out.detail)
    if isinstance(out, Document):
        return ("doc", out.external_id, out.created_at, out.content_hash())
    return ("fact", out.table, out.content_hash())


@pytest.mark.parametrize("source", sorted(SHAPES))
def test_every_field_of_every_item_takes_every_hostile_value(source: str) -> None:
    """The exhaustive companion of the random test: each special value (NaN, 1e20, 12.5, a lone surrogate,
    NUL, year 1 with an offset, ...) in each field of each item template, next to a good item."""
    from pulse.sources.base import StoredPage

    checked = 0
    for shape in SHAPES[source]:
        for template in shape.templates:
            good = template()
            for path in leaf_paths(good):
                for value in grid_values():
                    bad = with_value(good, path, value)
                    items = [bad] if shape.stream.startswith(("repo:", "current:")) else [bad, template()]
                    if shape.keyed:  # [key, bar] pairs of one object
                        items = [
                            i if isinstance(i, list) and len(i) == 2 else ["2026-11-20", i] for i in items
                        ]
                        items = [[k if isinstance(k, str) else str(k), v] for k, v in items]
                    body = body_text(shape.envelope(items))
                    page = StoredPage(
                        id=1, source=source, stream=shape.stream, endpoint=shape.endpoint, body=body
                    )
                    try:
                        outputs = _parse(page)
                    except MalformedPageError:
                        assert shape.stream.startswith(("repo:", "current:")), (path, value)
                        continue
                    for _, out in outputs:
                        _check_output(out)
                    checked += 1
    assert checked > 200


@pytest.mark.parametrize("source", sorted(SHAPES))
@settings(HOSTILE, max_examples=25)
@given(body=raw_bodies)
def test_a_body_that_is_no_page_is_malformed_never_another_error(source: str, body: str) -> None:
    from pulse.sources.base import StoredPage

    for shape in SHAPES[source]:
        page = StoredPage(id=1, source=source, stream=shape.stream, endpoint=shape.endpoint, body=body)
        try:
            for _, out in _parse(page):
                _check_output(out)
        except MalformedPageError as exc:
            _storable(str(exc))  # kept as the page's error in raw.api_responses


@HOSTILE
@given(data=st.data())
def test_paging_bounds_are_usable_times_or_none(data: Any) -> None:
    """How far back a page reached decides paging and listing-cap gaps: a hostile item never moves it to an
    unusable time (NaN, 1e20, year 0) and never raises."""
    from pulse.sources import github, newsapi, reddit

    page, _ = data.draw(pages("reddit"))
    bounds = [reddit.listing_info(page.body).oldest_created]
    page, _ = data.draw(pages("newsapi"))
    bounds.append(newsapi.oldest_published(newsapi.page_info(page.body).articles))
    page, _ = data.draw(pages("github"))
    kind = github.stream_kind(page.stream)
    try:
        info = github.page_info(kind, page.body)
    except MalformedPageError:
        info = None
    if info is not None:
        bounds += [info.oldest_created, info.newest_updated]
    for bound in bounds:
        assert bound is None or (math.isfinite(bound) and 0 <= bound < 4_102_444_800)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e20, 1e20, -1.0, "1764327600", True, None])
def test_a_page_keeps_no_unusable_oldest_time(value: Any) -> None:
    """Whatever a hook sets, ``Page.oldest_created`` holds a usable event time or None (the extract's
    listing-cap check turns it into a datetime)."""
    page = Page(Stream("s", "/e"), 0, "/e", {}, 200, {}, b"{}", oldest_created=value)
    assert page.oldest_created is None
    page.oldest_created = 1_764_327_600
    assert page.oldest_created == 1_764_327_600.0


# ------------------------------------------------------------------------------------------------
# the concrete findings of issue 12, as parser-level examples
# ------------------------------------------------------------------------------------------------


def _reddit_page(*children: Any) -> Any:
    from pulse.sources.base import StoredPage

    body = json.dumps({"kind": "Listing", "data": {"after": "t3_next", "children": list(children)}})
    return StoredPage(id=1, source="reddit", stream="new:python", endpoint="/r/python/new", body=body)


def _post(**data: Any) -> dict[str, Any]:
    base = {"id": "a", "name": "t3_a", "title": "T", "created_utc": 1_764_327_600.0, "score": 5}
    return {"kind": "t3", "data": {**base, **data}}


@pytest.mark.parametrize(
    "created", [float("nan"), float("inf"), float("-inf"), -1e20, 1e20, "1764327600", True, None, [1], -1.0]
)
def test_a_hostile_created_utc_is_quarantined_and_skipped_for_paging(created: Any) -> None:
    from pulse.sources.reddit import listing_info

    page = _reddit_page(_post(name="t3_good", id="good"), _post(created_utc=created))
    outputs = [o for _, o in _parse(page)]
    assert isinstance(outputs[0], Document)
    assert isinstance(outputs[1], Rejected) and outputs[1].reason == Reason.BAD_TIMESTAMP
    assert listing_info(page.body).oldest_created == 1_764_327_600.0


@pytest.mark.parametrize(
    ("score", "ok"), [(12.5, False), (12.0, True), (2**31, False), (float("nan"), False)]
)
def test_fractional_counts_are_never_truncated(score: float, ok: bool) -> None:
    [(_, out)] = _parse(_reddit_page(_post(score=score)))
    if ok:
        assert isinstance(out, Document) and out.score == 12 and isinstance(out.score, int)
    else:
        assert isinstance(out, Rejected) and out.reason in (Reason.BAD_FIELD, Reason.NUMBER_OUT_OF_RANGE)
        assert str(score) in out.detail or "nan" in out.detail.lower() or "fit" in out.detail


def test_fractional_github_stars_are_never_truncated() -> None:
    from pulse.sources.base import StoredPage

    body = json.dumps({"full_name": "o/r", "stargazers_count": 1.5, "forks_count": 2})
    page = StoredPage(
        id=1, source="github", stream="repo:o/r@2026-11-28T12:00:00+00:00", endpoint="/repos/o/r", body=body
    )
    [(_, out)] = _parse(page)
    assert isinstance(out, Rejected) and out.reason == Reason.BAD_FIELD and "1.5" in out.detail


def test_a_lone_surrogate_in_an_id_is_refused_with_a_storable_key() -> None:
    [(_, out)] = _parse(_reddit_page(_post(name="t3_\ud800x", id="\ud800x")))
    # The parser lets the id through (it is the item's identity); the record model refuses the document, and
    # the load weighs the refusal like any copy of the item (pulse.records.Refusal).
    assert isinstance(out, Rejected) and out.refusal is not None
    with pytest.raises(ItemError) as err:
        document_row(out.refusal, 1, "run")
    assert err.value.reason == Reason.BAD_FIELD and "surrogate" in err.value.detail
    assert out.reason == Reason.BAD_FIELD and out.detail == err.value.detail
    assert pgtypes.storable_key(out.item_key) == "t3_\\ud800x"
    assert pgtypes.storable_key(out.external_id) == "t3_\\ud800x"

"""The enrichers' word lists are data files in include/enrich/lexicon, read lazily once, and fail clearly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulse.enrich import EnrichInput, enrich_documents, geo, keywords  # noqa: F401 (see the last test)
from pulse.enrich import text as text_module
from pulse.enrich.text import LEXICON_DIR, LEXICON_FILES, LexiconMissingError, lexicon_data, word_list

ROOT = Path(__file__).resolve().parents[2]


def _clear_caches() -> None:
    for fn in (word_list, lexicon_data, text_module._joined, geo.ambiguous_city_names, geo.city_aliases):
        fn.cache_clear()
    geo.country_aliases.cache_clear()


@pytest.fixture
def empty_lexicon_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """LEXICON_DIR pointed at an empty folder, with the caches cleared before and after."""
    _clear_caches()
    monkeypatch.setattr(text_module, "LEXICON_DIR", tmp_path)
    yield tmp_path
    monkeypatch.undo()
    _clear_caches()


def test_the_lexicon_folder_holds_exactly_the_files_the_enrichers_read() -> None:
    assert sorted(p.name for p in LEXICON_DIR.iterdir()) == sorted(LEXICON_FILES)


def test_the_public_word_lists_keep_their_names_and_contents() -> None:
    from pulse.enrich.text import ABBREVIATIONS, STOPWORDS, STOPWORDS_EN, STOPWORDS_OTHER

    for words in (ABBREVIATIONS, STOPWORDS, STOPWORDS_EN, STOPWORDS_OTHER):
        assert isinstance(words, frozenset) and all(w == w.strip() and w for w in words)
    assert STOPWORDS == STOPWORDS_EN | STOPWORDS_OTHER
    assert {"the", "don't", "lots"} <= STOPWORDS_EN and "python" not in STOPWORDS
    assert {"de", "und", "très", "não", "abbiamo"} <= STOPWORDS_OTHER
    assert {"dr", "u.s", "e.g", "sept"} <= ABBREVIATIONS
    assert (len(STOPWORDS_EN), len(STOPWORDS_OTHER), len(ABBREVIATIONS)) == (301, 245, 43)
    assert not any(w.startswith("#") for w in STOPWORDS | ABBREVIATIONS)  # comment lines are not words
    with pytest.raises(AttributeError):
        _ = text_module.NO_SUCH_LIST


def test_the_geo_lists_are_read_from_the_lexicon_folder() -> None:
    assert {"Nice", "Mobile", "Man"} <= geo.ambiguous_city_names()
    assert geo.city_aliases()["Bombay"] == "Mumbai"
    assert geo.country_aliases()["Britain"] == "GB" and all(
        isinstance(v, str) and len(v) == 2 for v in geo.country_aliases().values()
    )


def test_lists_are_read_once_and_not_at_import() -> None:
    assert word_list("stopwords_en") is word_list("stopwords_en")
    code = "import pulse.enrich.text as t, pulse.enrich.pipeline; print(t.word_list.cache_info().currsize)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"},
    )
    assert out.stdout.strip() == "0"


def test_a_missing_word_list_says_which_file(empty_lexicon_dir: Path) -> None:
    with pytest.raises(LexiconMissingError, match=r"lexicon file .*stopwords_en\.txt is missing"):
        word_list("stopwords_en")
    with pytest.raises(LexiconMissingError, match=r"place_aliases\.yaml is missing"):
        lexicon_data("place_aliases")


def test_a_missing_word_list_fails_the_batch_not_each_document(empty_lexicon_dir: Path) -> None:
    # The enricher modules are imported already (keywords above, as in a worker after its first batch): the
    # pipeline itself must load every list up front, not leave each document to fail on it.
    doc = EnrichInput(
        ("x", "1", datetime(2026, 11, 28, tzinfo=UTC)), "x", "tweet", None, "Dr. Who is here.", None
    )
    with pytest.raises(LexiconMissingError):
        enrich_documents([doc])

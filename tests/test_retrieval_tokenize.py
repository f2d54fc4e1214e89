"""Tokenisation (shared by index and queries) and the synonym table."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import RetrievalError
from retrieval.settings import DEFAULT_SYNONYMS
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import tokenize


def test_tokenize_lowercases_drops_stop_words_and_stems() -> None:
    assert tokenize("What are the Symptoms of HbA1c-testing, for diabetes?") == [
        "symptom",
        "hba1c",
        "test",
        "diabet",
    ]
    assert tokenize("Type 1 diabetes") == ["type", "1", "diabet"]
    assert tokenize("ﬁnger-sticks") == ["finger", "stick"]  # NFKC ligature
    assert tokenize("") == []


def test_synonyms_expand_abbreviations_both_ways() -> None:
    table = SynonymTable.from_lines(["# comment", "", "t1d, type 1 diabetes, juvenile diabetes  # trailing"])
    assert table.expand(tokenize("T1D and sports")) == ["t1d", "sport", "type", "1", "diabet", "juvenil"]
    assert table.expand(tokenize("sports with type 1 diabetes")) == [
        "sport",
        "type",
        "1",
        "diabet",
        "t1d",
        "juvenil",
    ]
    assert table.expand(tokenize("type of diabetes")) == ["type", "diabet"]  # the phrase must be contiguous


def test_a_group_with_one_term_is_an_error_naming_the_line() -> None:
    with pytest.raises(RetrievalError, match="syn.txt:2"):
        SynonymTable.from_lines(["a, b", "lonely"], where="syn.txt")


def test_the_bundled_table_covers_the_domain_abbreviations() -> None:
    table = SynonymTable.load(DEFAULT_SYNONYMS)
    expected = {
        "t1d": "juvenil", "t2d": "type", "a1c": "hba1c", "bg": "glucos", "hypo": "hypoglycemia",
        "hyper": "hyperglycemia", "dka": "ketoacidosi", "cgm": "continu", "mody": "matur",
    }  # fmt: skip
    for abbreviation, expansion in expected.items():
        assert expansion in table.expand(tokenize(abbreviation)), abbreviation


def test_an_unreadable_table_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="missing.txt"):
        SynonymTable.load(tmp_path / "missing.txt")

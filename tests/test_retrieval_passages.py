"""Sentence splitting and passage chunking: offsets exact, sentences never cut, sizes respected."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.ingest import read_folder
from retrieval.passages import Passage, chunk_spans, content_id, split_into_passages, split_sentences

DOCS = Path(__file__).resolve().parent.parent / "data" / "docs"

TEXT = (
    "Dr. Smith studies type 1 diabetes in the U.S. population. Insulin was discovered in 1921! "
    "Was it a surprise? Yes, e.g. Banting was young. Blood glucose is 5.5 mmol/L here.\n\n"
    "A second paragraph starts here. It has two sentences."
)


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_split_sentences_respects_abbreviations_numbers_and_paragraphs() -> None:
    assert _sentences(TEXT) == [
        "Dr. Smith studies type 1 diabetes in the U.S. population.",
        "Insulin was discovered in 1921!",
        "Was it a surprise?",
        "Yes, e.g. Banting was young.",
        "Blood glucose is 5.5 mmol/L here.",
        "A second paragraph starts here.",
        "It has two sentences.",
    ]


def _passages(text: str, target: int, maximum: int, overlap: int) -> list[Passage]:
    return split_into_passages(
        text,
        doc_id="d",
        title="T",
        source=None,
        target_words=target,
        max_words=maximum,
        overlap_sentences=overlap,
    )


@pytest.mark.parametrize(
    ("target", "maximum", "overlap"), [(5, 10, 0), (10, 20, 1), (12, 40, 2), (200, 400, 1)]
)
def test_passages_are_whole_sentences_with_exact_offsets(target: int, maximum: int, overlap: int) -> None:
    sentences = set(split_sentences(TEXT))
    starts = {s for s, _ in sentences}
    ends = {e for _, e in sentences}
    passages = _passages(TEXT, target, maximum, overlap)
    assert passages
    for passage in passages:
        assert TEXT[passage.start : passage.end] == passage.text
        assert passage.start in starts and passage.end in ends  # never cuts a sentence
        assert passage.id == content_id(passage.text)
        assert len(passage.text.split()) <= maximum
    covered = set().union(*(range(p.start, p.end) for p in passages))
    assert all(i in covered for s, e in sentences for i in range(s, e))  # nothing is lost


def test_overlap_repeats_the_last_sentences() -> None:
    first, second = _passages(TEXT, 12, 20, 1)[:2]
    assert len(_sentences(first.text)) == 2
    last_of_first = _sentences(first.text)[-1]
    assert second.text.startswith(last_of_first)


def test_an_overlong_sentence_is_split_at_word_boundaries() -> None:
    text = " ".join(f"word{i}" for i in range(25)) + "."
    spans = chunk_spans(text, target_words=5, max_words=10, overlap_sentences=0)
    assert [len(text[s:e].split()) for s, e in spans] == [10, 10, 5]
    assert " ".join(text[s:e] for s, e in spans) == text


def test_bundled_documents_chunk_within_limits() -> None:
    documents, skipped = read_folder(DOCS)
    assert len(documents) == 106 and skipped == []
    for doc in documents:
        for passage in _passages(doc.text, 120, 200, 1):
            assert doc.text[passage.start : passage.end] == passage.text
            assert 0 < len(passage.text.split()) <= 200

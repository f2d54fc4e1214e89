"""The passage types that cross the retrieval boundary."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


def content_id(text: str) -> str:
    """A stable id for a passage: the hash of its text, so logged answers survive a reindex."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Passage:
    """A chunk of one document that the reader reads.

    Attributes:
        id: hash of ``text`` (see ``content_id``).
        text: the passage text (normalised).
        doc_id: the document's id (its path relative to the documents folder).
        title: the document's title.
        source: the document's source URL, if it gives one.
        start: character offset of the passage in the (normalised) document text.
        end: character offset just past the passage.
    """

    id: str
    text: str
    doc_id: str
    title: str
    source: str | None
    start: int
    end: int


@dataclass(frozen=True)
class ScoredPassage:
    """A passage with its BM25 score for one query."""

    passage: Passage
    score: float


# --- Sentence-aware chunking ---------------------------------------------------------------------

# A sentence ends at . ! or ? (closing quotes/brackets allowed) followed by whitespace and a capital,
# digit or opening quote/bracket; a paragraph break always ends one.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_PARAGRAPH = re.compile(r"\n\n+")
# Words whose full stop does not end a sentence (lowercase, without the stop).
ABBREVIATIONS = frozenset(
    """
    e.g i.e al dr mr mrs ms prof vs approx fig nos st jr sr inc ltd co u.s u.k ph.d ca cf
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()  # noqa: SIM905 - a word list reads better than 40 quoted strings
)
_WORD_SPAN = re.compile(r"\S+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a normalised text.

    Args:
        text: normalised text (see ``retrieval.ingest.normalise_text``).

    Returns:
        ``(start, end)`` spans, in order, without surrounding whitespace; ``text[start:end]`` is the
        sentence.
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for paragraph in _PARAGRAPH.split(text):
        start = text.index(paragraph, offset) if paragraph else offset
        offset = start + len(paragraph)
        spans.extend(_paragraph_sentences(paragraph, start))
    return [(s, e) for s, e in spans if e > s]


def _paragraph_sentences(paragraph: str, base: int) -> list[tuple[int, int]]:
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        before = paragraph[start : match.start()].rsplit(None, 1)
        last_word = before[-1].lower() if before else ""
        # "Dr. Smith", "e.g. Insulin", "J. Smith": an abbreviation or an initial, not an ending.
        if last_word.rstrip(".") in ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        spans.append((base + start, base + match.end()))
        start = match.end()
        while start < len(paragraph) and paragraph[start].isspace():
            start += 1
    spans.append((base + start, base + len(paragraph.rstrip())))
    return spans


def _word_count(text: str, span: tuple[int, int]) -> int:
    return len(text[span[0] : span[1]].split())


def _split_long(text: str, span: tuple[int, int], max_words: int) -> list[tuple[int, int]]:
    """Cut a "sentence" longer than ``max_words`` (a list without full stops) at word boundaries."""
    words = [(m.start() + span[0], m.end() + span[0]) for m in _WORD_SPAN.finditer(text[span[0] : span[1]])]
    return [
        (words[i][0], words[min(i + max_words, len(words)) - 1][1]) for i in range(0, len(words), max_words)
    ]


def chunk_spans(
    text: str, target_words: int, max_words: int, overlap_sentences: int
) -> list[tuple[int, int]]:
    """Group a document's sentences into passages.

    A passage takes whole sentences until it holds ``target_words`` words, never more than
    ``max_words``; the next passage starts ``overlap_sentences`` sentences before the previous end.

    Args:
        text: the normalised document text.
        target_words: close a passage once it has this many words.
        max_words: never exceed this many words (unless one sentence alone is longer, see
            ``_split_long``).
        overlap_sentences: sentences shared by consecutive passages.

    Returns:
        ``(start, end)`` character spans of the passages.
    """
    sentences: list[tuple[int, int]] = []
    for span in split_sentences(text):
        long = _word_count(text, span) > max_words
        sentences.extend(_split_long(text, span, max_words) if long else [span])
    counts = [_word_count(text, s) for s in sentences]
    passages: list[tuple[int, int]] = []
    first = 0
    while first < len(sentences):
        last, words = first, counts[first]
        while last + 1 < len(sentences) and words < target_words and words + counts[last + 1] <= max_words:
            last += 1
            words += counts[last]
        passages.append((sentences[first][0], sentences[last][1]))
        if last + 1 >= len(sentences):
            break
        first = max(last + 1 - overlap_sentences, first + 1)
    return passages


def split_into_passages(
    text: str, *, doc_id: str, title: str, source: str | None, target_words: int, max_words: int,
    overlap_sentences: int,
) -> list[Passage]:  # fmt: skip
    """Cut one document's normalised text into ``Passage`` objects.

    Args:
        text: the normalised document text.
        doc_id: the document's id.
        title: the document's title.
        source: the document's URL, if any.
        target_words: see ``chunk_spans``.
        max_words: see ``chunk_spans``.
        overlap_sentences: see ``chunk_spans``.

    Returns:
        Passages with ``text == document_text[start:end]``.
    """
    return [
        Passage(content_id(text[s:e]), text[s:e], doc_id, title, source, s, e)
        for s, e in chunk_spans(text, target_words, max_words, overlap_sentences)
    ]

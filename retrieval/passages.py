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
    """A passage retrieved for one query.

    Attributes:
        passage: the passage.
        score: the score it was ranked by (BM25, cosine, or the fused score in hybrid mode).
        bm25: its BM25 score (0 when it shares no term with the query).
        dense: its cosine similarity to the query (0 when dense retrieval was not used).
    """

    passage: Passage
    score: float
    bm25: float = 0.0
    dense: float = 0.0


# --- Sentence-aware chunking ---------------------------------------------------------------------

# Chosen by bench/bench_sentences.py on 91 gold cases (abbreviations, decimals, lists, chat text, real
# NIH paragraphs): sentencex 89% of cases exactly right, boundary F1 0.962, 8 ms for all bundled
# documents; pysbd 94.5% / 0.983 but 5 s; our old regex 79% / 0.872 (it never split "- " list items).
_PARAGRAPH = re.compile(r"\n\n+")
# Where sentencex still splits after an abbreviation ("approx. 30"): a split is undone when the
# sentence ends in one of these words and the next one starts with a lowercase letter or a digit.
ABBREVIATIONS = frozenset(
    """
    e.g i.e al dr mr mrs ms prof vs approx fig nos no st jr sr inc ltd co u.s u.k ph.d ca cf etc
    jan feb mar apr jun jul aug sep sept oct nov dec
    """.split()  # noqa: SIM905 - a word list reads better than 40 quoted strings
)
_WORD_SPAN = re.compile(r"\S+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a text (sentencex, paragraph breaks always end one).

    The one sentence splitter of the project: chunking documents into passages and quoting the sentence
    around an answer both use it.

    Args:
        text: any text (normalised document text, a passage).

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
    import sentencex  # noqa: PLC0415 - a compiled extension; loaded when documents are first chunked

    spans: list[tuple[int, int]] = []
    cursor = 0
    for sentence in sentencex.segment("en", paragraph):
        piece = sentence.strip()
        if not piece:
            continue
        found = paragraph.find(piece, cursor)
        if found < 0:  # sentencex returned altered text: fall back to one span for the rest
            spans.append((cursor, len(paragraph.rstrip())))
            break
        spans.append((found, found + len(piece)))
        cursor = found + len(piece)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and _continues(paragraph, merged[-1], start):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [(base + s, base + e) for s, e in merged]


def _continues(paragraph: str, previous: tuple[int, int], start: int) -> bool:
    """True when the split before ``start`` came after an abbreviation, not a sentence end."""
    words = paragraph[previous[0] : previous[1]].rsplit(None, 1)
    last = words[-1].lower().rstrip(".") if words else ""
    following = paragraph[start : start + 1]
    return last in ABBREVIATIONS and (following.islower() or following.isdigit())


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

"""The passage types that cross the retrieval boundary."""

from __future__ import annotations

import hashlib
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

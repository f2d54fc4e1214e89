"""What the answer engine hands out: ``Answer`` and its ``Timings`` (types only, light to import).

The store and the formatting import these without loading the engine, the reader or the BM25 stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetune.types import Span
from retrieval import Passage, ScoredPassage


@dataclass(frozen=True)
class Timings:
    """Wall-clock milliseconds spent on one answer."""

    retrieval_ms: float
    reading_ms: float
    total_ms: float


@dataclass(frozen=True)
class Answer:
    """The engine's reply to one question.

    Attributes:
        text: the answer span's text, or None when the documents do not answer the question.
        confidence: the calibrated probability that the best candidate is right, in [0, 1] (the
            reader's own probability when the model has no calibration).
        passage: the passage the answer comes from; when ``text`` is None, the best passage to read.
        span: the answer span (offsets into ``passage.text``), None when there is no answer.
        sentence: the sentence(s) of ``passage`` around the span, None when there is no answer.
        title: ``passage.title`` (None without a passage).
        source: ``passage.source`` (None without a passage or when the document gives none).
        timings: where the time went.
        retrieved: every passage retrieved for the question, best first (for the store, so that
            ``export-feedback`` can rebuild the reader's contexts), then the passage a direct answer was
            read from when retrieval did not rank it.
        passages_read: how many passages the reader read for this answer.
        passages_rechecked: how many of them were read again on the unquantised model, the decision
            being a close call on an int8 reader (``bot.fusion.needs_recheck``).
        basis: how it was found: ``reader`` (retrieved passages read, calibrated decision),
            ``definition`` (read where the documents define the term asked about: ``bot.definitions``)
            or ``section`` (read after a document's own question asking the same: ``bot.headings``).
    """

    text: str | None
    confidence: float
    passage: Passage | None
    span: Span | None
    sentence: str | None
    title: str | None
    source: str | None
    timings: Timings
    retrieved: tuple[ScoredPassage, ...] = ()
    passages_read: int = 0
    basis: str = "reader"
    passages_rechecked: int = 0

    @property
    def answered(self) -> bool:
        """True when the engine found an answer above the confidence threshold."""
        return self.text is not None

    @property
    def quote(self) -> str | None:
        """The sentence to show under the answer: None when there is none, or when it is the answer
        itself (a table's introduction, ``bot.headings``), which is not shown twice."""
        return self.sentence if self.sentence and self.sentence != self.text else None

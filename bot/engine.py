"""The answer engine: BM25 retrieval + one batched reader call + BERTserini score fusion.

No telegram here: the Telegram handlers, ``bot ask`` and the benchmarks all call ``AnswerEngine``.

Scoring (Yang et al. 2019, "End-to-End Open-Domain Question Answering with BERTserini",
https://arxiv.org/abs/1902.01718) ranks each candidate span by

    fused = mu * reader + (1 - mu) * bm25

with both terms put on the same [0, 1] scale first:

- ``reader``: a softmax of the reader's span scores (start + end logit, comparable across the contexts
  of one question) over *all* candidate spans of all k passages plus one "no answer" option, whose
  score is the lowest no-answer (CLS) score over the passages: the SQuAD v2 rule "the null score is the
  minimum over windows", with the k passages as the windows. A reader that finds nothing convincing
  anywhere therefore gives every span a small probability instead of the best of a bad lot 1.0.
- ``bm25``: ``score / (score + bm25_half_score)``, a saturating map that keeps absolute strength (a
  weak lexical match stays low even when it is the best one), unlike dividing by the top score.

``confidence`` is the fused score of the winning span; below ``min_confidence`` the engine answers
nothing and points to the best passage instead of inventing an answer.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.config import Settings
from finetune.types import Reading, Span
from retrieval import IndexReport, Passage, ScoredPassage, build_index, load_index

logger = logging.getLogger(__name__)

# A sentence ends at . ! or ? followed by whitespace (good enough for the bundled NIH prose).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


class ReaderLike(Protocol):
    """What the engine needs from a reader (``finetune.reader.Reader`` or a test fake)."""

    def warm_up(self) -> None: ...

    def read(self, question: str, contexts: Sequence[str], top_k: int = 1) -> list[Reading]: ...


class SearchIndex(Protocol):
    """What the engine needs from an index (``retrieval.BM25Index`` or a test fake)."""

    def search(self, query: str, top_k: int = 5) -> list[ScoredPassage]: ...


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
        confidence: fused score of the best candidate, in [0, 1].
        passage: the passage the answer comes from; when ``text`` is None, the best passage to read.
        span: the answer span (offsets into ``passage.text``), None when there is no answer.
        sentence: the sentence(s) of ``passage`` around the span, None when there is no answer.
        title: ``passage.title`` (None without a passage).
        source: ``passage.source`` (None without a passage or when the document gives none).
        timings: where the time went.
        retrieved: every passage retrieved for the question, best BM25 first (for the store, so that
            ``export-feedback`` can rebuild the reader's contexts).
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

    @property
    def answered(self) -> bool:
        """True when the engine found an answer above the confidence threshold."""
        return self.text is not None


@dataclass(frozen=True)
class Candidate:
    """One span from one retrieved passage, with its scores on the fusion scale."""

    passage_index: int
    span: Span
    reader: float
    bm25: float
    fused: float


@dataclass(frozen=True)
class Evidence:
    """What one question's retrieval and reading produced, before fusion.

    Attributes:
        retrieved: the passages, best BM25 first.
        readings: the reader's output, one per passage, in the same order.
        retrieval_ms: time spent searching the index.
        reading_ms: time spent in the reader.
    """

    retrieved: tuple[ScoredPassage, ...]
    readings: tuple[Reading, ...]
    retrieval_ms: float
    reading_ms: float


def softmax_with_null(scores: Sequence[float], null_score: float) -> list[float]:
    """Probabilities of ``scores`` in a softmax that also holds a no-answer option.

    Args:
        scores: span scores (logits) of all candidates of one question.
        null_score: the question's no-answer score; ``-inf`` leaves it out.

    Returns:
        One probability per score (the no-answer option takes the rest of the mass).
    """
    if not scores:
        return []
    pool = [*scores, null_score] if math.isfinite(null_score) else list(scores)
    top = max(pool)
    exps = [math.exp(s - top) for s in pool]  # minus the max: no overflow
    total = sum(exps)
    return [e / total for e in exps[: len(scores)]]


def normalise_bm25(score: float, half_score: float) -> float:
    """Map a BM25 score into [0, 1): ``score / (score + half_score)`` (0 for scores <= 0)."""
    return score / (score + half_score) if score > 0 else 0.0


@dataclass(frozen=True)
class Fusion:
    """The knobs of BERTserini fusion and the answer threshold (a plain value, so tuning can vary it).

    Attributes:
        mu: weight of the reader score; ``1 - mu`` goes to the normalised BM25 score.
        bm25_half_score: the BM25 score that normalises to 0.5 (see ``normalise_bm25``).
        spans_per_passage: candidate spans per passage that compete in the softmax.
        min_confidence: the fused score the best candidate needs to be given as an answer.
    """

    mu: float
    bm25_half_score: float
    spans_per_passage: int = 1
    min_confidence: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Fusion:
        """The fusion knobs of the bot's settings."""
        return cls(
            settings.fusion_mu, settings.bm25_half_score, settings.spans_per_passage, settings.min_confidence
        )


def rank_candidates(
    bm25_scores: Sequence[float], readings: Sequence[Reading], fusion: Fusion
) -> list[Candidate]:
    """Score every candidate span by BERTserini fusion, best first (a pure function of its inputs).

    Args:
        bm25_scores: the raw BM25 score of each passage, in the order their readings come.
        readings: the reader's output, one per passage.
        fusion: ``mu``, ``bm25_half_score`` and ``spans_per_passage``.

    Returns:
        The candidates sorted by fused score, best first (empty when no passage had a span).
    """
    if len(bm25_scores) != len(readings):
        raise ValueError(f"got {len(readings)} readings for {len(bm25_scores)} passages")
    pairs = [
        (i, span) for i, reading in enumerate(readings) for span in reading.spans[: fusion.spans_per_passage]
    ]
    null_scores = [r.no_answer_score for r in readings if math.isfinite(r.no_answer_score)]
    null = min(null_scores) if null_scores else -math.inf
    probs = softmax_with_null([span.score for _, span in pairs], null)
    candidates = []
    for (i, span), prob in zip(pairs, probs, strict=True):
        bm25 = normalise_bm25(bm25_scores[i], fusion.bm25_half_score)
        candidates.append(Candidate(i, span, prob, bm25, fusion.mu * prob + (1 - fusion.mu) * bm25))
    # Stable sort: equal fused scores keep passage (BM25) order.
    return sorted(candidates, key=lambda c: c.fused, reverse=True)


def choose_answer(candidates: Sequence[Candidate], min_confidence: float) -> Candidate | None:
    """The candidate to answer with: the best one when it reaches ``min_confidence``, else None.

    Args:
        candidates: ranked candidates, best first (``rank_candidates``' output).
        min_confidence: the threshold on the fused score.

    Returns:
        The winning candidate, or None when the engine should say the documents do not answer.
    """
    if not candidates or candidates[0].fused < min_confidence:
        return None
    return candidates[0]


def fuse_candidates(
    retrieved: Sequence[ScoredPassage], readings: Sequence[Reading], settings: Settings
) -> list[Candidate]:
    """``rank_candidates`` for retrieved passages and the bot's settings.

    Args:
        retrieved: the passages, in the order their readings come.
        readings: the reader's output, one per passage.
        settings: ``fusion_mu``, ``bm25_half_score`` and ``spans_per_passage``.

    Returns:
        The candidates sorted by fused score, best first (empty when no passage had a span).
    """
    return rank_candidates([sp.score for sp in retrieved], readings, Fusion.from_settings(settings))


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence (or run of sentences) of ``text`` that holds ``text[start:end]``.

    Args:
        text: the passage text.
        start: character offset of the span.
        end: character offset just past the span.

    Returns:
        The stripped sentence(s) covering the span.
    """
    begin, finish = 0, len(text)
    for match in _SENTENCE_BREAK.finditer(text):
        if match.end() <= start:
            begin = match.end()
        elif match.start() >= end:
            finish = match.start()
            break
    return text[begin:finish].strip()


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class AnswerEngine:
    """Answers questions from the indexed documents; swaps model and index without downtime.

    Args:
        settings: paths (``served_model_dir()``, ``index_dir``, ``docs_dir``) and answering knobs.
        reader: a ready reader to use instead of loading ``settings.served_model_dir()``.
        index: a ready index to use instead of loading ``settings.index_dir``.
        reader_factory: builds a warmed-up reader from a model directory (for ``reload``); default
            ``finetune.reader.Reader``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        reader: ReaderLike | None = None,
        index: SearchIndex | None = None,
        reader_factory: Callable[[Path], ReaderLike] | None = None,
    ):
        self.settings = settings
        self._reader_factory = reader_factory or self._load_reader
        self._reader = reader
        self._index = index
        self._reader_warm = False
        # Guards the two references: answer() takes a consistent (reader, index) pair, reload()
        # replaces them together, so a request in flight finishes with the objects it started with.
        self._swap_lock = threading.Lock()
        # Serialises warm-up, reload and reindex: each builds heavy objects, one at a time is enough.
        self._admin_lock = threading.Lock()

    @property
    def is_warm(self) -> bool:
        """True once the reader and the index are loaded."""
        return self._reader_warm and self._index is not None

    def warm_up(self) -> None:
        """Load the reader and the index (once); later calls do nothing.

        Raises:
            IndexLoadError: the index directory is missing or broken.
            OSError, ValueError: the model directory cannot be loaded.
        """
        with self._admin_lock:
            if self.is_warm:
                return
            # The index first: it loads in a fraction of a second, so a bad path fails before the
            # model's seconds of loading.
            index = self._index or load_index(self.settings.index_dir)
            reader = self._reader or self._reader_factory(self.settings.served_model_dir())
            if self._reader is not None:
                reader.warm_up()
            with self._swap_lock:
                self._reader, self._index, self._reader_warm = reader, index, True
        logger.info("answer engine ready")

    def answer(self, question: str) -> Answer:
        """Answer one question from the top-k passages.

        Args:
            question: the member's question (non-empty).

        Returns:
            The best span by fused score, or an Answer with ``text=None`` below the threshold.
        """
        evidence = self.gather(question, self.settings.top_k)
        started = time.perf_counter()
        candidates = fuse_candidates(evidence.retrieved, evidence.readings, self.settings)
        timings = Timings(
            evidence.retrieval_ms, evidence.reading_ms,
            evidence.retrieval_ms + evidence.reading_ms + _ms_since(started),
        )  # fmt: skip
        return self._decide(evidence.retrieved, candidates, timings)

    def gather(self, question: str, top_k: int) -> Evidence:
        """Retrieve the top-k passages and read them all in one batched reader call (no fusion yet).

        ``answer()`` fuses what this returns; ``bench/tune_engine.py`` calls it once per question with
        the largest k it tries and fuses offline with ``rank_candidates`` on the first k passages (a
        passage's reading does not depend on the other passages read with it).

        Args:
            question: the question (non-empty).
            top_k: passages to retrieve and read.

        Returns:
            The passages, their readings and the time each step took.
        """
        if not question.strip():
            raise ValueError("question is empty")
        if not self.is_warm:
            self.warm_up()
        with self._swap_lock:
            reader, index = self._reader, self._index
        started = time.perf_counter()
        retrieved = tuple(index.search(question, top_k=top_k))
        retrieval_ms = _ms_since(started)
        read_start = time.perf_counter()
        contexts = [sp.passage.text for sp in retrieved]
        readings = (
            tuple(reader.read(question, contexts, top_k=self.settings.spans_per_passage)) if retrieved else ()
        )
        return Evidence(retrieved, readings, retrieval_ms, _ms_since(read_start))

    def _decide(
        self, retrieved: tuple[ScoredPassage, ...], candidates: list[Candidate], timings: Timings
    ) -> Answer:
        """Turn the ranked candidates into an answer, or a pointer to the best passage."""
        best = choose_answer(candidates, self.settings.min_confidence)
        if best is None:
            return self._no_answer(retrieved, candidates[0] if candidates else None, timings)
        passage = retrieved[best.passage_index].passage
        sentence = sentence_around(passage.text, best.span.start, best.span.end)
        return Answer(
            best.span.text,
            best.fused,
            passage,
            best.span,
            sentence,
            passage.title,
            passage.source,
            timings,
            retrieved,
        )

    @staticmethod
    def _no_answer(retrieved: tuple[ScoredPassage, ...], best: Candidate | None, timings: Timings) -> Answer:
        """An honest "not in the documents", pointing to the passage most worth reading."""
        if best is not None:
            passage: Passage | None = retrieved[best.passage_index].passage
        else:
            passage = retrieved[0].passage if retrieved else None
        title = passage.title if passage else None
        source = passage.source if passage else None
        confidence = best.fused if best else 0.0
        return Answer(None, confidence, passage, None, None, title, source, timings, retrieved)

    def reload(self, model_dir: Path | None = None, index_dir: Path | None = None) -> None:
        """Load a model and an index, then swap both in at once; requests in flight finish on the old ones.

        Args:
            model_dir: the reader to serve; default ``settings.served_model_dir()`` (the newest one).
            index_dir: the index to serve; default ``settings.index_dir``.
        """
        model_dir = model_dir or self.settings.served_model_dir()
        index_dir = index_dir or self.settings.index_dir
        with self._admin_lock:
            reader = self._reader_factory(model_dir)
            index = load_index(index_dir)
            with self._swap_lock:
                self._reader, self._index, self._reader_warm = reader, index, True
        logger.info("reloaded model %s and index %s", model_dir, index_dir)

    def reindex(self, docs_dir: Path | None = None) -> IndexReport:
        """Rebuild the index from the documents, then serve it.

        Args:
            docs_dir: the documents; default ``settings.docs_dir``.

        Returns:
            The build report (documents, passages, skipped files, seconds).
        """
        docs_dir = docs_dir or self.settings.docs_dir
        with self._admin_lock:
            report = build_index(docs_dir, self.settings.index_dir)
            index = load_index(self.settings.index_dir)
            with self._swap_lock:
                self._index = index
        logger.info("reindexed %s: %d passages", docs_dir, report.passages)
        return report

    def _load_reader(self, model_dir: Path) -> ReaderLike:
        """Build and warm up the real reader (imported here: torch loads only when a model is served)."""
        from finetune.reader import Reader  # noqa: PLC0415 - keeps `bot --help` and the handlers torch-free

        if self.settings.reader_threads:
            import torch  # noqa: PLC0415 - loaded by the Reader import above anyway

            # Process-wide: the reader is the only torch user in the bot process.
            torch.set_num_threads(self.settings.reader_threads)
        reader = Reader(model_dir, max_answer_length=self.settings.max_answer_tokens)
        reader.warm_up()
        return reader

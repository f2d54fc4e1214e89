"""From the readings of k passages to one answer or an honest "not in the documents": pure functions.

1. **Candidates**: each passage's best span. Its *margin* is the span score minus the passage's
   no-answer (CLS) score. The reader is trained with unanswerable examples (a passage that does not hold
   the answer is labelled CLS), so the margin is that passage's log-odds of "the answer is here": the
   no-answer score is a per-passage reference point that makes spans of different passages comparable
   (the role of Clark & Gardner's 2018 shared normalisation, without a shared softmax at training time).
2. **Choice and confidence**: ``bot.calibration.Calibration`` gives every candidate a probability of
   being right, from the reader's and the retriever's evidence, fitted on dev questions; the engine
   answers with the likeliest candidate when that probability reaches the calibration's threshold, and
   declines otherwise.
3. **Without a calibration** (a freshly trained model directory): candidates are ranked by
   ``margin + retrieval_weight * retrieval`` and the best one's confidence is the reader's own
   probability (``finetune.postprocess.reading_probabilities``, a softmax over the spans of all passages
   plus "no answer") against ``UNCALIBRATED_THRESHOLD``; the engine says so in its log.
4. **A close call on an int8 reader** (``needs_recheck``): when the confidence lies within
   ``Scoring.recheck_margin`` of the threshold, the engine re-reads the passages of the likeliest
   candidates on the unquantised model and decides again, so that int8's rounding does not decide
   between answering and declining.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.calibration import Calibration
from bot.tables import with_table_row
from finetune.postprocess import reading_probabilities
from finetune.types import Reading, Span
from retrieval import ScoredPassage

# The decision threshold on the reader's own probability when a model has no calibration.json: the one
# that gives the shipped reader's answers 80% precision on the diabetes dev questions (3 passages read;
# bench/tune_engine.py evidence; 14% answered right there, against 28% with its calibration). At 0.5 the
# same reader's answers were only 66% right: a freshly trained model must not be trusted more.
UNCALIBRATED_THRESHOLD = 0.93
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Candidate:
    """One passage's best span with the evidence about it.

    Attributes:
        passage_index: position of its passage in the retrieved list.
        span: the span.
        margin: span score minus the passage's no-answer score.
        probability: the reader's probability of the span (softmax over all passages' spans and "no
            answer").
        rank_score: what candidates are ranked by (``margin + retrieval_weight * retrieval``).
        features: the calibration features (``bot.calibration.FEATURES``).
    """

    passage_index: int
    span: Span
    margin: float
    probability: float
    rank_score: float
    features: dict[str, float]


@dataclass(frozen=True)
class Decision:
    """The chosen candidate (None when no passage had a span) and whether to give it as the answer."""

    candidate: Candidate | None
    confidence: float
    answer: bool


@dataclass(frozen=True)
class Scoring:
    """How candidates are ranked and answers decided (a plain value, so tuning can vary it).

    Attributes:
        retrieval_weight: weight of the passage's retrieval score next to the reader's margin.
        min_confidence: the confidence an answer needs; None: the calibration's threshold (or
            ``UNCALIBRATED_THRESHOLD`` without one).
        spans_per_passage: spans per passage that compete in the reader's probability.
        recheck_margin: an approximate (int8) reader's decision is re-read exactly when its confidence
            lies closer than this to the threshold (0: never).
    """

    retrieval_weight: float = 0.0
    min_confidence: float | None = None
    spans_per_passage: int = 1
    recheck_margin: float = 0.0


def _normalised(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def rank_candidates(
    retrieved: Sequence[ScoredPassage], readings: Sequence[Reading], retrieval_weight: float, spans: int = 1
) -> list[Candidate]:
    """Every passage's best span with its features, best first (a pure function of its inputs).

    Args:
        retrieved: the passages, in retrieval order (their readings come in the same order).
        readings: the reader's output, one per passage.
        retrieval_weight: weight of the retrieval score in the ranking.
        spans: spans per passage that compete in the reader's probability.

    Returns:
        One candidate per passage that has a span, sorted by ``rank_score`` (ties: retrieval order).
    """
    if len(retrieved) != len(readings):
        raise ValueError(f"got {len(readings)} readings for {len(retrieved)} passages")
    probabilities = reading_probabilities(readings, spans) if readings else []
    # A bare frequency cell of a symptom table answers with its row (bot.tables), here so that the
    # features, the tuner's labels and the answer all see the text a member will see.
    best = [
        (i, with_table_row(r.spans[0], retrieved[i].passage.text)) for i, r in enumerate(readings) if r.spans
    ]
    if not best:
        return []
    margins = {i: margin(span, readings[i]) for i, span in best}
    texts = [_normalised(span.text) for _, span in best]
    top_dense = max((sp.dense for sp in retrieved), default=0.0)
    candidates = []
    for (i, span), text in zip(best, texts, strict=True):
        others = [m for j, m in margins.items() if j != i]
        features = {
            "margin": margins[i],
            "span_score": span.score,
            "null_score": _finite(readings[i].no_answer_score),
            "probability": probabilities[i][0],
            "margin_gap": margins[i] - max(others) if others else 10.0,
            "agreement": texts.count(text) / len(readings),
            "positive_share": sum(m > 0 for m in margins.values()) / len(readings),
            "retrieval": retrieved[i].score,
            "retrieval_rank": 1.0 / (1 + i),
            "bm25": math.log1p(max(retrieved[i].bm25, 0.0)),
            "dense": retrieved[i].dense,
            "top_dense": top_dense,
            "answer_words": math.log1p(len(span.text.split())),
        }
        rank_score = margins[i] + retrieval_weight * retrieved[i].score
        candidates.append(Candidate(i, span, margins[i], probabilities[i][0], rank_score, features))
    return sorted(candidates, key=lambda c: c.rank_score, reverse=True)  # stable: ties keep order


def margin(span: Span, reading: Reading) -> float:
    """How far a span's score beats its passage's no-answer score: the reader's "the answer is here"
    log-odds."""
    return span.score - _finite(reading.no_answer_score)


def _finite(score: float) -> float:
    """A no-answer score usable in arithmetic (-inf, from a reader without one, counts as very low)."""
    return score if math.isfinite(score) else -1e4


def decide(candidates: Sequence[Candidate], calibration: Calibration | None, scoring: Scoring) -> Decision:
    """Whether to answer with the best candidate, and with what confidence.

    Args:
        candidates: ranked candidates, best first (``rank_candidates``' output).
        calibration: the served model's calibration; None: the reader's probability is the confidence.
        scoring: the threshold override.

    Returns:
        The decision: with a calibration, the candidate most likely right and that probability; without,
        the best-ranked candidate and the reader's probability.
    """
    if not candidates:
        return Decision(None, 0.0, False)
    best, confidence = likeliest(candidates, calibration)[0]
    return Decision(best, confidence, confidence >= answer_threshold(calibration, scoring))


def likeliest(
    candidates: Sequence[Candidate], calibration: Calibration | None
) -> list[tuple[Candidate, float]]:
    """The candidates with their confidence, likeliest first: by the calibrated probability (the
    calibration model ranks too: it weighs reader and retrieval evidence as learned on held-out
    questions), else in rank order with the reader's own probability. Ties keep the rank order."""
    if calibration is None:
        return [(c, c.probability) for c in candidates]
    scored = [(c, calibration.probability(c.features)) for c in candidates]
    return sorted(scored, key=lambda pair: pair[1], reverse=True)


def needs_recheck(decision: Decision, calibration: Calibration | None, scoring: Scoring) -> bool:
    """Whether the decision is a close call: its confidence within ``scoring.recheck_margin`` of the
    threshold, where an int8 reader's rounding can turn an answer into a decline or back."""
    if decision.candidate is None:
        return False
    return abs(decision.confidence - answer_threshold(calibration, scoring)) < scoring.recheck_margin


def answer_threshold(calibration: Calibration | None, scoring: Scoring) -> float:
    """The confidence an answer needs: the configured minimum, else the calibration's threshold, else
    ``UNCALIBRATED_THRESHOLD`` on the reader's own probability."""
    if scoring.min_confidence is not None:
        return scoring.min_confidence
    return calibration.threshold if calibration is not None else UNCALIBRATED_THRESHOLD

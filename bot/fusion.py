"""BERTserini score fusion and the answer-or-not choice: pure functions of scores, no I/O.

Scoring (Yang et al. 2019, "End-to-End Open-Domain Question Answering with BERTserini",
https://arxiv.org/abs/1902.01718) ranks each candidate span by

    fused = mu * reader + (1 - mu) * bm25

with both terms put on the same [0, 1] scale first:

- ``reader``: ``finetune.postprocess.reading_probabilities``, the reader's one probability formula (a
  softmax over all candidate spans of all k passages plus one "no answer" option scored by the lowest
  no-answer score over the passages), so ``finetune predict`` and the bot report the same number.
- ``bm25``: ``score / (score + bm25_half_score)``, a saturating map that keeps absolute strength (a
  weak lexical match stays low even when it is the best one), unlike dividing by the top score.

``confidence`` is the fused score of the winning span; below ``min_confidence`` the engine answers
nothing and points to the best passage instead of inventing an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from finetune.postprocess import reading_probabilities
from finetune.types import Reading, Span
from retrieval import ScoredPassage

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True)
class Candidate:
    """One span from one retrieved passage, with its scores on the fusion scale."""

    passage_index: int
    span: Span
    reader: float
    bm25: float
    fused: float


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
    probabilities = reading_probabilities(readings, fusion.spans_per_passage)
    candidates = []
    for i, (reading, probs) in enumerate(zip(readings, probabilities, strict=True)):
        bm25 = normalise_bm25(bm25_scores[i], fusion.bm25_half_score)
        for span, prob in zip(reading.spans, probs, strict=False):  # probs covers the competing spans
            candidates.append(Candidate(i, span, prob, bm25, fusion.mu * prob + (1 - fusion.mu) * bm25))
    # Stable sort: equal fused scores keep passage (BM25) order.
    return sorted(candidates, key=lambda c: c.fused, reverse=True)


def fuse_candidates(
    retrieved: Sequence[ScoredPassage], readings: Sequence[Reading], fusion: Fusion
) -> list[Candidate]:
    """``rank_candidates`` for retrieved passages.

    Args:
        retrieved: the passages, in the order their readings come.
        readings: the reader's output, one per passage.
        fusion: the fusion knobs.

    Returns:
        The candidates sorted by fused score, best first (empty when no passage had a span).
    """
    return rank_candidates([sp.score for sp in retrieved], readings, fusion)


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

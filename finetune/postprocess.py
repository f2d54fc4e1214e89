"""Start/end logits -> ranked answer spans. numpy only (no torch), like transformers' ``utils_qa.py``.

The one span decoder used by ``finetune evaluate``, by the per-epoch dev evaluation in training, by
``finetune predict`` and by the bot's Reader:

- in each window, the ``n_best_size`` best start and end tokens are paired; a pair is kept when both
  tokens lie inside the context, start <= end, and it is at most ``max_answer_length`` tokens long;
- a span's score is its start logit + end logit; the best over all windows of a context wins (the same
  characters seen from two overlapping windows keep their higher score);
- the no-answer score of a context is its CLS start+end logit, the lowest over its windows (the SQuAD v2
  convention: the window that sees the answer best is the least sure there is none);
- probabilities (``reading_probabilities``, the one formula: ``finetune predict``, evaluation and the
  bot's fusion all use it) are a softmax over the kept spans of all the question's contexts plus one
  "no answer" option scored by the lowest no-answer score over the contexts, so they can be compared
  across contexts, and a reader that finds nothing convincing gives every span a small probability
  instead of the best of a bad lot 1.0.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from finetune.features import NO_OFFSET
from finetune.types import Reading, Span

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSettings:
    """How spans are chosen.

    Attributes:
        n_best_size: start and end tokens considered per window, and spans kept per context.
        max_answer_length: the longest answer, in tokens.
    """

    n_best_size: int = 20
    max_answer_length: int = 30

    def __post_init__(self) -> None:
        if self.n_best_size < 1:
            raise ValueError(f"n_best_size must be at least 1, got {self.n_best_size}")
        if self.max_answer_length < 1:
            raise ValueError(f"max_answer_length must be at least 1, got {self.max_answer_length}")


@dataclass(frozen=True)
class WindowLogits:
    """A window's model output next to what is needed to read it.

    Attributes:
        start_logits: (n,) start logits (padding already cut off).
        end_logits: (n,) end logits.
        offsets: (n, 2) character offsets into the context, ``NO_OFFSET`` outside the context.
        cls_index: the CLS token's position.
    """

    start_logits: np.ndarray
    end_logits: np.ndarray
    offsets: np.ndarray
    cls_index: int = 0


@dataclass(frozen=True)
class Candidates:
    """The candidate spans of one context, best first (character offsets and scores)."""

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    no_answer_score: float


def window_candidates(
    window: WindowLogits, settings: DecodeSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The valid spans of one window.

    Args:
        window: logits and offsets of the window.
        settings: n-best size and maximum answer length.

    Returns:
        (char_starts, char_ends, scores) of every valid pair of the n-best start and end tokens.
    """
    n = len(window.offsets)
    if window.start_logits.shape != (n,) or window.end_logits.shape != (n,):
        raise ValueError(
            f"logits of shape {window.start_logits.shape}/{window.end_logits.shape} for {n} offsets"
        )
    in_context = window.offsets[:, 0] != NO_OFFSET
    top = min(settings.n_best_size, int(in_context.sum()))
    if top == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    masked_start = np.where(in_context, window.start_logits, -np.inf)
    masked_end = np.where(in_context, window.end_logits, -np.inf)
    start_tokens = np.argsort(-masked_start, kind="stable")[:top]
    end_tokens = np.argsort(-masked_end, kind="stable")[:top]
    s, e = np.meshgrid(start_tokens, end_tokens, indexing="ij")
    length = e - s + 1
    keep = (length >= 1) & (length <= settings.max_answer_length)
    s, e = s[keep], e[keep]
    scores = window.start_logits[s].astype(np.float64) + window.end_logits[e].astype(np.float64)
    return window.offsets[s, 0].astype(np.int64), window.offsets[e, 1].astype(np.int64), scores


def context_candidates(windows: Sequence[WindowLogits], settings: DecodeSettings) -> Candidates:
    """The n-best spans of one context over all its windows, best first.

    Args:
        windows: the context's windows (at least one).
        settings: n-best size and maximum answer length.

    Returns:
        Up to ``n_best_size`` distinct character spans with their best score, and the no-answer score.
    """
    if not windows:
        raise ValueError("a context needs at least one window")
    parts = [window_candidates(w, settings) for w in windows]
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    order = np.argsort(-scores, kind="stable")
    starts, ends, scores = starts[order], ends[order], scores[order]
    # Overlapping windows see the same characters: keep each span once, at its best score.
    _, first = np.unique(np.stack([starts, ends], axis=1), axis=0, return_index=True)
    first = np.sort(first)[: settings.n_best_size] if len(starts) else first
    no_answer = min(float(w.start_logits[w.cls_index]) + float(w.end_logits[w.cls_index]) for w in windows)
    return Candidates(starts[first], ends[first], scores[first], no_answer)


def softmax(scores: np.ndarray) -> np.ndarray:
    """A numerically stable softmax of a 1-d array (empty in, empty out)."""
    if scores.size == 0:
        return scores.astype(np.float64)
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


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
    return softmax(np.asarray(pool, dtype=np.float64))[: len(scores)].tolist()


def reading_probabilities(readings: Sequence[Reading], spans_per_reading: int) -> list[list[float]]:
    """The probability of each of the first ``spans_per_reading`` spans of every reading.

    The one probability formula of the project (see the module docstring): one softmax over those
    spans of all the question's readings plus a no-answer option, scored by the lowest finite
    no-answer score over the readings (the readings are the windows of the SQuAD v2 rule).

    Args:
        readings: one question's readings, one per context.
        spans_per_reading: spans of each reading that compete (at least 1).

    Returns:
        For each reading, the probabilities of its first ``spans_per_reading`` spans.
    """
    if spans_per_reading < 1:
        raise ValueError(f"spans_per_reading must be at least 1, got {spans_per_reading}")
    kept = [reading.spans[:spans_per_reading] for reading in readings]
    nulls = [r.no_answer_score for r in readings if math.isfinite(r.no_answer_score)]
    flat = softmax_with_null([span.score for spans in kept for span in spans], min(nulls, default=-math.inf))
    result, offset = [], 0
    for spans in kept:
        result.append(flat[offset : offset + len(spans)])
        offset += len(spans)
    return result


def decode_question(
    contexts: Sequence[str],
    windows: Sequence[Sequence[WindowLogits]],
    settings: DecodeSettings,
    top_k: int = 1,
) -> list[Reading]:
    """Rank the answer spans of one question over several contexts.

    Args:
        contexts: the contexts the question was read against.
        windows: for each context, its windows' logits.
        settings: n-best size and maximum answer length.
        top_k: spans kept per context.

    Returns:
        One Reading per context: its ``top_k`` best spans, with ``reading_probabilities`` over the
        kept spans of all contexts.
    """
    if len(contexts) != len(windows):
        raise ValueError(f"{len(contexts)} contexts but {len(windows)} window groups")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    per_context = [context_candidates(w, settings) for w in windows]
    readings = [
        Reading(spans=_top_spans(context, candidates, top_k), no_answer_score=candidates.no_answer_score)
        for context, candidates in zip(contexts, per_context, strict=True)
    ]
    probabilities = reading_probabilities(readings, top_k)
    return [
        replace(r, spans=tuple(replace(s, probability=p) for s, p in zip(r.spans, ps, strict=True)))
        for r, ps in zip(readings, probabilities, strict=True)
    ]


def _top_spans(context: str, candidates: Candidates, top_k: int) -> tuple[Span, ...]:
    """The ``top_k`` best candidates as spans of ``context`` (probabilities are filled in later)."""
    return tuple(
        Span(
            text=context[int(start) : int(end)],
            start=int(start),
            end=int(end),
            score=float(score),
            probability=0.0,
        )
        for start, end, score in zip(
            candidates.starts[:top_k], candidates.ends[:top_k], candidates.scores[:top_k], strict=True
        )
    )


def best_answer(reading: Reading, allow_no_answer: bool, null_threshold: float = 0.0) -> str:
    """The text a SQuAD evaluation scores for one reading.

    Args:
        reading: the reading of the question's context.
        allow_no_answer: True for SQuAD v2 data, where "" (no answer) is a valid prediction.
        null_threshold: the best span must beat the no-answer score by more than this.

    Returns:
        The best span's text, or "" for no answer.
    """
    best = reading.best
    if best is None:
        return ""
    if allow_no_answer and reading.no_answer_score > best.score + null_threshold:
        return ""
    return best.text

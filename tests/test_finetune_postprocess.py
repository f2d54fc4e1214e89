"""The numpy span decoder on hand-built logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finetune.features import NO_OFFSET
from finetune.postprocess import (
    DecodeSettings,
    WindowLogits,
    best_answer,
    context_candidates,
    decode_question,
    softmax,
    window_candidates,
)
from finetune.types import Reading, Span

CONTEXT = "alpha beta gamma delta"
# token 0 = CLS, 1-2 = question, 3 = SEP, 4-7 = the four context words, 8 = SEP
OFFSETS = np.array(
    [[-1, -1], [-1, -1], [-1, -1], [-1, -1], [0, 5], [6, 10], [11, 16], [17, 22], [-1, -1]], dtype=np.int32
)


def _window(start: dict[int, float], end: dict[int, float], offsets: np.ndarray = OFFSETS) -> WindowLogits:
    """Logits of -10 everywhere except the given tokens."""
    start_logits = np.full(len(offsets), -10.0, dtype=np.float32)
    end_logits = np.full(len(offsets), -10.0, dtype=np.float32)
    for token, value in start.items():
        start_logits[token] = value
    for token, value in end.items():
        end_logits[token] = value
    return WindowLogits(start_logits, end_logits, offsets, cls_index=0)


def test_best_span_is_the_highest_logit_sum() -> None:
    (reading,) = decode_question([CONTEXT], [[_window({5: 3.0, 4: 1.0}, {6: 2.0, 7: 1.5})]], DecodeSettings())
    best = reading.best
    assert best == Span("beta gamma", 6, 16, 5.0, best.probability)
    assert 0.0 < best.probability < 1.0


def test_end_before_start_is_never_chosen() -> None:
    # the best start (gamma) comes after the best end (alpha): the pair is invalid
    (reading,) = decode_question([CONTEXT], [[_window({6: 5.0, 4: 0.0}, {4: 5.0, 7: 0.0})]], DecodeSettings())
    assert all(span.start < span.end for span in reading.spans)
    assert reading.best.text in {"alpha", "gamma delta"}
    assert reading.best.score == pytest.approx(5.0)  # gamma delta: 5 + 0, or alpha: 0 + 5


def test_tokens_outside_the_context_are_never_chosen() -> None:
    # CLS and question tokens have the highest logits, but no offsets
    window = _window({0: 9.0, 1: 9.0, 5: 1.0}, {0: 9.0, 2: 9.0, 5: 1.0})
    starts, ends, _ = window_candidates(window, DecodeSettings())
    assert (starts >= 0).all() and (ends > 0).all()
    (reading,) = decode_question([CONTEXT], [[window]], DecodeSettings())
    assert reading.best.text == "beta"


def test_max_answer_length_limits_spans() -> None:
    window = _window({4: 5.0, 6: 1.0}, {7: 5.0, 6: 1.0})
    (long,) = decode_question([CONTEXT], [[window]], DecodeSettings(max_answer_length=4))
    (short,) = decode_question([CONTEXT], [[window]], DecodeSettings(max_answer_length=2))
    assert long.best.text == "alpha beta gamma delta"
    assert short.best.text == "gamma delta"  # alpha..delta is 4 tokens; start 6 + end 7 is the best that fits


def test_best_over_windows_dedupes_spans_and_takes_min_cls() -> None:
    # two overlapping windows of one context; both see "gamma"
    first = _window({6: 2.0, 0: 1.0}, {6: 2.0, 0: 3.0})  # CLS score 4
    second = _window({6: 4.0, 0: -1.0}, {6: 3.0, 0: 0.0})  # CLS score -1
    candidates = context_candidates([first, second], DecodeSettings(n_best_size=5))
    spans = list(zip(candidates.starts.tolist(), candidates.ends.tolist(), strict=True))
    assert spans[0] == (11, 16) and candidates.scores[0] == pytest.approx(7.0)
    assert len(spans) == len(set(spans))  # gamma is listed once, at its best score
    assert candidates.no_answer_score == pytest.approx(-1.0)
    assert list(candidates.scores) == sorted(candidates.scores, reverse=True)


def test_probabilities_are_one_softmax_across_contexts() -> None:
    strong = _window({5: 6.0}, {5: 6.0})
    weak = _window({4: 1.0}, {4: 1.0})
    readings = decode_question([CONTEXT, CONTEXT], [[strong], [weak]], DecodeSettings(n_best_size=2), top_k=3)
    assert len(readings) == 2
    assert readings[0].best.probability > readings[1].best.probability
    assert readings[0].best.text == "beta" and readings[1].best.text == "alpha"
    # all candidates of the question sum to 1; the kept top_k are a subset
    every = context_candidates([strong], DecodeSettings(n_best_size=2)).scores.tolist()
    every += context_candidates([weak], DecodeSettings(n_best_size=2)).scores.tolist()
    expected = math.exp(12.0) / sum(math.exp(s) for s in every)
    assert readings[0].best.probability == pytest.approx(expected)
    assert sum(span.probability for r in readings for span in r.spans) <= 1.0 + 1e-9
    assert all(len(r.spans) <= 3 for r in readings)


def test_a_window_without_context_tokens_gives_no_spans() -> None:
    offsets = np.full((4, 2), NO_OFFSET, dtype=np.int32)
    (reading,) = decode_question(["text"], [[_window({}, {}, offsets)]], DecodeSettings())
    assert reading.spans == () and reading.best is None
    assert best_answer(reading, allow_no_answer=False) == ""


def test_best_answer_uses_no_answer_score_only_for_v2() -> None:
    span = Span("beta", 6, 10, 2.0, 0.9)
    reading = Reading(spans=(span,), no_answer_score=3.0)
    assert best_answer(reading, allow_no_answer=True) == ""
    assert best_answer(reading, allow_no_answer=False) == "beta"
    assert best_answer(Reading((span,), no_answer_score=1.0), allow_no_answer=True) == "beta"


def test_softmax_is_stable_and_handles_empty() -> None:
    values = softmax(np.array([1000.0, 1000.0]))
    assert values.tolist() == [0.5, 0.5]
    assert softmax(np.empty(0)).size == 0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="logits of shape"):
        window_candidates(WindowLogits(np.zeros(3), np.zeros(3), OFFSETS), DecodeSettings())
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        decode_question([CONTEXT], [[_window({}, {})]], DecodeSettings(), top_k=0)
    with pytest.raises(ValueError, match="1 contexts but 2 window groups"):
        decode_question([CONTEXT], [[_window({}, {})], [_window({}, {})]], DecodeSettings())
    with pytest.raises(ValueError, match="n_best_size"):
        DecodeSettings(n_best_size=0)

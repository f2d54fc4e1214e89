"""SQuAD evaluation of a model on examples: windows -> logits -> decoded answers -> EM/F1.

The same path serves ``finetune evaluate`` and the dev evaluation after each training epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from finetune.features import Window, WindowSettings, prepare_eval_features
from finetune.inference import forward_windows
from finetune.metrics import squad_scores
from finetune.postprocess import DecodeSettings, WindowLogits, best_answer, decode_question
from finetune.squad import SquadExample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSet:
    """Examples with their windows, tokenized once and reused every epoch."""

    examples: tuple[SquadExample, ...]
    windows: tuple[Window, ...]

    @property
    def allow_no_answer(self) -> bool:
        """SQuAD v2 data: "" (no answer) is a prediction the model may make."""
        return any(example.is_impossible for example in self.examples)


def build_eval_set(tokenizer: Any, examples: Sequence[SquadExample], settings: WindowSettings) -> EvalSet:
    """Tokenize examples for evaluation.

    Args:
        tokenizer: the fast tokenizer.
        examples: the examples.
        settings: window length and stride.

    Returns:
        The examples and their windows.
    """
    windows = prepare_eval_features(
        tokenizer, [e.question for e in examples], [e.context for e in examples], settings
    )
    return EvalSet(tuple(examples), tuple(windows))


def predict_answers(
    model: Any,
    eval_set: EvalSet,
    *,
    pad_id: int,
    batch_size: int,
    decode: DecodeSettings,
    dtype: torch.dtype | None = None,
    null_threshold: float = 0.0,
) -> dict[str, str]:
    """Predict an answer text for every example.

    Args:
        model: the QA model (on its device).
        eval_set: examples and windows from ``build_eval_set``.
        pad_id: the tokenizer's pad token id.
        batch_size: windows per forward pass.
        decode: n-best size and maximum answer length.
        dtype: autocast dtype, or None for fp32.
        null_threshold: on v2 data, the margin a span needs over the no-answer score.

    Returns:
        Question id -> predicted text ("" for no answer on v2 data).
    """
    was_training = model.training
    model.eval()
    try:
        logits = forward_windows(model, eval_set.windows, batch_size=batch_size, pad_id=pad_id, dtype=dtype)
    finally:
        model.train(was_training)
    return decode_answers(eval_set, logits, decode, null_threshold)


def decode_answers(
    eval_set: EvalSet, logits: Sequence[WindowLogits], decode: DecodeSettings, null_threshold: float = 0.0
) -> dict[str, str]:
    """The answer text of every example from its windows' logits (any backend's).

    Args:
        eval_set: examples and windows from ``build_eval_set``.
        logits: one WindowLogits per window of ``eval_set``, aligned with its windows.
        decode: n-best size and maximum answer length.
        null_threshold: on v2 data, the margin a span needs over the no-answer score.

    Returns:
        Question id -> predicted text ("" for no answer on v2 data).
    """
    if len(logits) != len(eval_set.windows):
        raise ValueError(f"{len(logits)} logits for {len(eval_set.windows)} windows")
    grouped: list[list[WindowLogits]] = [[] for _ in eval_set.examples]
    for window, window_logits in zip(eval_set.windows, logits, strict=True):
        grouped[window.example_index].append(window_logits)
    predictions = {}
    for example, windows in zip(eval_set.examples, grouped, strict=True):
        (reading,) = decode_question([example.context], [windows], decode)
        predictions[example.id] = best_answer(reading, eval_set.allow_no_answer, null_threshold)
    return predictions


def score_predictions(eval_set: EvalSet, predictions: dict[str, str]) -> dict[str, float]:
    """SQuAD EM/F1 (and HasAns/NoAns on v2 data) of predictions against the eval set's gold answers."""
    golds = {example.id: [answer.text for answer in example.answers] for example in eval_set.examples}
    return squad_scores(predictions, golds)

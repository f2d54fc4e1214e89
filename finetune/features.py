"""Turn (question, context) pairs into model windows, and answers into token labels.

Pure, top-level functions shared by training, evaluation and the bot's Reader. A context longer than
``max_seq_length`` is cut into overlapping windows (``doc_stride`` tokens of overlap) so no answer is
lost to truncation. The fast tokenizer's ``offset_mapping`` ties every token to its characters, which
is what turns a character answer span into token labels and a predicted token span back into text.

Tokenization runs over large batches in the Rust tokenizer; per-window work is numpy, never a Python
loop over tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finetune.squad import SquadExample

logger = logging.getLogger(__name__)

# Examples per tokenizer call: large enough for the Rust tokenizer to parallelise, small enough that
# one batch's encodings stay a few MB.
TOKENIZE_BATCH = 2048

# A question keeps at most this share of a window's tokens; the rest is for the context it is read in.
MAX_QUESTION_SHARE = 0.5

# Offsets of tokens outside the context (question, special tokens, padding). numpy cannot hold None in
# an int array, so -1 plays that role; the decoder never picks such a token.
NO_OFFSET = -1


@dataclass(frozen=True)
class WindowSettings:
    """How contexts are cut into windows.

    Attributes:
        max_seq_length: tokens per window, question and special tokens included.
        doc_stride: tokens of overlap between consecutive windows of one context.
    """

    max_seq_length: int = 384
    doc_stride: int = 128

    def __post_init__(self) -> None:
        if self.max_seq_length < 16:
            raise ValueError(f"max_seq_length must be at least 16, got {self.max_seq_length}")
        if not 0 < self.doc_stride < self.max_seq_length:
            raise ValueError(f"doc_stride must be in (0, max_seq_length), got {self.doc_stride}")


@dataclass(frozen=True)
class TrainFeature:
    """One training window with its answer labels (token indices; the CLS index when not inside)."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    start_position: int
    end_position: int


@dataclass(frozen=True)
class Window:
    """One inference window of an example.

    Attributes:
        example_index: index of the (question, context) pair it came from.
        input_ids: token ids.
        token_type_ids: segment ids.
        offsets: (n, 2) character offsets into the context; ``NO_OFFSET`` for tokens outside it.
        cls_index: position of the CLS token (its logits are the no-answer score).
    """

    example_index: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray
    offsets: np.ndarray
    cls_index: int

    @property
    def context_mask(self) -> np.ndarray:
        return self.offsets[:, 0] != NO_OFFSET


def _encode(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], settings: WindowSettings
) -> Any:
    """Tokenize question/context pairs into overflowing windows (question first, context truncated)."""
    if getattr(tokenizer, "padding_side", "right") != "right":
        raise ValueError("only tokenizers that pad on the right (question first) are supported")
    fitted, _ = fit_questions(tokenizer, questions, settings)
    return tokenizer(
        fitted,
        list(contexts),
        truncation="only_second",
        max_length=settings.max_seq_length,
        stride=settings.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def question_token_limit(tokenizer: Any, settings: WindowSettings) -> int:
    """The most tokens a question may take in a window.

    ``MAX_QUESTION_SHARE`` of the window, and never so many that the context's share is not longer
    than ``doc_stride``: the tokenizer fails (or panics) on a question that leaves less.
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = settings.max_seq_length - specials - settings.doc_stride - 1
    return max(1, min(int(settings.max_seq_length * MAX_QUESTION_SHARE), room))


def fit_questions(
    tokenizer: Any, questions: Sequence[str], settings: WindowSettings
) -> tuple[list[str], int]:
    """The questions, left-stripped and cut at a token boundary to ``question_token_limit`` tokens.

    A member may paste a paragraph as a question; it is read by its first tokens instead of failing.

    Args:
        tokenizer: a fast (Rust) Hugging Face tokenizer.
        questions: the questions.
        settings: window length and stride.

    Returns:
        The questions that fit, and how many had to be cut.
    """
    limit = question_token_limit(tokenizer, settings)
    texts = [q.lstrip() for q in questions]  # leading spaces waste window room (a known SQuAD quirk)
    cut: set[int] = set()
    pending = list(range(len(texts)))
    while pending:  # one pass in practice; a cut text re-tokenizes to at most as many tokens
        encoded = tokenizer(
            [texts[i] for i in pending], add_special_tokens=False, return_offsets_mapping=True
        )
        over = [(i, offsets) for i, offsets in zip(pending, encoded["offset_mapping"], strict=True)
                if len(offsets) > limit]  # fmt: skip
        for i, offsets in over:
            texts[i] = texts[i][: offsets[limit - 1][1]]
            cut.add(i)
        pending = [i for i, _ in over]
    if cut:
        logger.warning("cut %d of %d questions to their first %d tokens", len(cut), len(texts), limit)
    return texts, len(cut)


def _window_arrays(encoding: Any, cls_token_id: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """ids, type ids, context-only offsets and CLS index of one tokenizers.Encoding."""
    ids = np.asarray(encoding.ids, dtype=np.int32)
    type_ids = np.asarray(encoding.type_ids, dtype=np.int8)
    # sequence_ids holds None for special tokens: as float those become NaN, so `== 1` is False.
    in_context = np.asarray(encoding.sequence_ids, dtype=np.float32) == 1
    offsets = np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2)
    offsets[~in_context] = NO_OFFSET
    hits = np.flatnonzero(ids == cls_token_id) if cls_token_id is not None else ()
    return ids, type_ids, offsets, int(hits[0]) if len(hits) else 0


def _token_labels(offsets: np.ndarray, cls_index: int, start_char: int, end_char: int) -> tuple[int, int]:
    """Token start/end of a character span in one window, or (CLS, CLS) when not wholly inside it."""
    context = np.flatnonzero(offsets[:, 0] != NO_OFFSET)
    if len(context) == 0:
        return cls_index, cls_index
    starts, ends = offsets[context, 0], offsets[context, 1]
    if starts[0] > start_char or ends[-1] < end_char:
        return cls_index, cls_index
    # The last token starting at or before the answer, the first token ending at or after it.
    first = int(np.searchsorted(starts, start_char, side="right")) - 1
    last = int(np.searchsorted(ends, end_char, side="left"))
    return int(context[first]), int(context[min(last, len(context) - 1)])


def prepare_train_features(
    tokenizer: Any, examples: Sequence[SquadExample], settings: WindowSettings
) -> list[TrainFeature]:
    """Tokenize training examples into labelled windows.

    Args:
        tokenizer: a fast (Rust) Hugging Face tokenizer.
        examples: the examples; the first gold answer is the label, none means unanswerable.
        settings: window length and stride.

    Returns:
        One feature per window; a window that does not hold the whole answer is labelled with the CLS
        token, as is every window of an unanswerable question.
    """
    features: list[TrainFeature] = []
    for begin in range(0, len(examples), TOKENIZE_BATCH):
        batch = examples[begin : begin + TOKENIZE_BATCH]
        encoded = _encode(tokenizer, [e.question for e in batch], [e.context for e in batch], settings)
        for encoding, sample in zip(encoded.encodings, encoded["overflow_to_sample_mapping"], strict=True):
            ids, type_ids, offsets, cls_index = _window_arrays(encoding, tokenizer.cls_token_id)
            example = batch[sample]
            if example.answers:
                answer = example.answers[0]
                start, end = _token_labels(offsets, cls_index, answer.start, answer.end)
            else:
                start = end = cls_index
            features.append(TrainFeature(ids, type_ids, start, end))
    return features


def prepare_eval_features(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], settings: WindowSettings
) -> list[Window]:
    """Tokenize (question, context) pairs into inference windows.

    Args:
        tokenizer: a fast (Rust) Hugging Face tokenizer.
        questions: one question per pair.
        contexts: one context per pair.
        settings: window length and stride.

    Returns:
        The windows of all pairs, in pair order; ``Window.example_index`` names the pair.
    """
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    windows: list[Window] = []
    for begin, encoded in _encoded_batches(tokenizer, questions, contexts, settings):
        for encoding, sample in zip(encoded.encodings, encoded["overflow_to_sample_mapping"], strict=True):
            ids, type_ids, offsets, cls_index = _window_arrays(encoding, tokenizer.cls_token_id)
            windows.append(Window(begin + int(sample), ids, type_ids, offsets, cls_index))
    return windows


def _encoded_batches(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], settings: WindowSettings
) -> Iterator[tuple[int, Any]]:
    """The tokenizer's windows for the pairs, ``TOKENIZE_BATCH`` pairs a call (fast tokenizers are
    much faster on batches), each with the index of its first pair."""
    for begin in range(0, len(questions), TOKENIZE_BATCH):
        end = begin + TOKENIZE_BATCH
        yield begin, _encode(tokenizer, questions[begin:end], contexts[begin:end], settings)


def count_multi_window(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], settings: WindowSettings
) -> int:
    """How many (question, context) pairs need more than one window."""
    counts = np.zeros(len(questions), dtype=np.int64)
    for begin, encoded in _encoded_batches(tokenizer, questions, contexts, settings):
        np.add.at(counts, begin + np.asarray(encoded["overflow_to_sample_mapping"]), 1)
    return int((counts > 1).sum())


@dataclass(frozen=True)
class _Tokens:
    """A text's tokens without special tokens: ids and character offsets."""

    ids: np.ndarray
    offsets: np.ndarray


class ContextTokens:
    """The windows of one question over several contexts, from contexts tokenized once.

    The bot reads the same few hundred passages for every question, so tokenizing each (question,
    passage) pair again is wasted work (a third of a question's tokenizing time). This keeps each
    context's tokens and assembles the window ``[CLS] question [SEP] context [SEP]`` in numpy
    wherever the pair fits in one window (791 of the 827 bundled passages). A longer context, and any
    tokenizer whose pair template is not that one (checked once, on a probe pair), take
    ``prepare_eval_features``: the tokenizer's own overflow logic. The windows are the same either way
    (``tests/test_finetune_features.py`` compares them).

    Not thread-safe: the Reader calls it under its tokenizer lock.

    Args:
        tokenizer: a fast (Rust) Hugging Face tokenizer.
        settings: window length and stride.
        capacity: contexts kept (the oldest are forgotten first).
    """

    def __init__(self, tokenizer: Any, settings: WindowSettings, capacity: int = 4096):
        self.tokenizer = tokenizer
        self.settings = settings
        self.capacity = capacity
        self._contexts: dict[str, _Tokens] = {}
        self._specials = (tokenizer.cls_token_id, tokenizer.sep_token_id)
        self.assembles = None not in self._specials and self._assembled_like_the_tokenizer()

    def windows(self, question: str, contexts: Sequence[str]) -> list[Window]:
        """The windows of ``question`` (already fitted, see ``fit_questions``) over ``contexts``, in
        context order (``Window.example_index`` names the context), as ``prepare_eval_features``."""
        if not self.assembles:
            return prepare_eval_features(
                self.tokenizer, [question] * len(contexts), list(contexts), self.settings
            )
        asked = self._tokens(question, remember=False)
        room = self.settings.max_seq_length - 3 - len(asked.ids)  # [CLS] question [SEP] context [SEP]
        windows: list[Window | None] = []
        longer: list[int] = []
        for index, context in enumerate(contexts):
            tokens = self._tokens(context)
            if len(tokens.ids) <= room:
                windows.append(self._assemble(index, asked, tokens))
            else:
                windows.append(None)
                longer.append(index)
        if not longer:
            return windows  # type: ignore[return-value]  # every slot is filled
        cut = prepare_eval_features(
            self.tokenizer, [question] * len(longer), [contexts[i] for i in longer], self.settings
        )
        by_context: dict[int, list[Window]] = {}
        for window in cut:
            original = longer[window.example_index]
            by_context.setdefault(original, []).append(
                Window(original, window.input_ids, window.token_type_ids, window.offsets, window.cls_index)
            )
        return [w for index, one in enumerate(windows)
                for w in ([one] if one is not None else by_context[index])]  # fmt: skip

    def _tokens(self, text: str, *, remember: bool = True) -> _Tokens:
        known = self._contexts.get(text)
        if known is not None:
            return known
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens = _Tokens(
            np.asarray(encoded["input_ids"], dtype=np.int32),
            np.asarray(encoded["offset_mapping"], dtype=np.int32).reshape(-1, 2),
        )
        if remember:
            if len(self._contexts) >= self.capacity:
                del self._contexts[next(iter(self._contexts))]  # dicts keep insertion order: the oldest
            self._contexts[text] = tokens
        return tokens

    def _assemble(self, index: int, question: _Tokens, context: _Tokens) -> Window:
        cls, sep = self._specials
        n_question, n_context = len(question.ids), len(context.ids)
        ids = np.concatenate(([cls], question.ids, [sep], context.ids, [sep])).astype(np.int32)
        types = np.zeros(len(ids), dtype=np.int8)
        types[n_question + 2 :] = 1
        offsets = np.full((len(ids), 2), NO_OFFSET, dtype=np.int32)
        offsets[n_question + 2 : n_question + 2 + n_context] = context.offsets
        return Window(index, ids, types, offsets, 0)

    def _assembled_like_the_tokenizer(self) -> bool:
        """True when this tokenizer's windows of a probe pair are the assembled ones."""
        question, context = "What is insulin?", "Insulin is a hormone made by the pancreas."
        (expected,) = prepare_eval_features(self.tokenizer, [question], [context], self.settings)
        asked, tokens = self._tokens(question, remember=False), self._tokens(context, remember=False)
        got = self._assemble(0, asked, tokens)
        return all(
            np.array_equal(getattr(got, name), getattr(expected, name))
            for name in ("input_ids", "token_type_ids", "offsets")
        ) and got.cls_index == expected.cls_index

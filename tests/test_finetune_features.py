"""Windows and labels: char span -> token labels -> char span, across sliding windows."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.features import (
    NO_OFFSET,
    ContextTokens,
    WindowSettings,
    count_multi_window,
    fit_questions,
    prepare_eval_features,
    prepare_train_features,
    question_token_limit,
)
from finetune.postprocess import DecodeSettings, WindowLogits, decode_question
from finetune.squad import GoldAnswer, SquadExample
from tests.finetune_fixtures import CONTEXT_A1C, CONTEXT_FOOT, CONTEXT_INSULIN, make_tokenizer

# Three sentences: at 24 tokens a window holds only part of this context.
LONG_CONTEXT = f"{CONTEXT_INSULIN} {CONTEXT_A1C} {CONTEXT_FOOT}"
SMALL_WINDOWS = WindowSettings(max_seq_length=24, doc_stride=8)


def _example(
    answer: str | None, context: str = LONG_CONTEXT, question: str = "What is insulin?"
) -> SquadExample:
    answers = () if answer is None else (GoldAnswer(answer, context.index(answer)),)
    return SquadExample("id", "title", context, question, answers, "test.json")


def _decoded(window_offsets: np.ndarray, start: int, end: int, context: str) -> str:
    return context[window_offsets[start, 0] : window_offsets[end, 1]]


@pytest.mark.parametrize("answer", ["a hormone", "average blood sugar", "blisters and swelling"])
def test_labels_round_trip_to_the_answer_text_in_every_window_that_holds_it(answer: str) -> None:
    tokenizer = make_tokenizer()
    example = _example(answer)
    features = prepare_train_features(tokenizer, [example], SMALL_WINDOWS)
    windows = prepare_eval_features(tokenizer, [example.question], [example.context], SMALL_WINDOWS)
    assert len(features) == len(windows) > 2
    holding = [i for i, f in enumerate(features) if f.start_position != 0]
    assert holding, "no window was labelled with the answer"
    for i in holding:
        feature = features[i]
        assert 0 < feature.start_position <= feature.end_position
        assert (
            _decoded(windows[i].offsets, feature.start_position, feature.end_position, example.context)
            == answer
        )
    for i in set(range(len(features))) - set(holding):  # windows without the whole answer point at CLS
        assert features[i].start_position == features[i].end_position == 0
        offsets = windows[i].offsets[windows[i].context_mask]
        start = example.context.index(answer)
        assert not (offsets[:, 0].min() <= start and offsets[:, 1].max() >= start + len(answer))


def test_an_answer_only_in_the_second_window_is_labelled_there() -> None:
    tokenizer = make_tokenizer()
    answer = "average blood sugar"
    example = _example(answer)
    features = prepare_train_features(tokenizer, [example], SMALL_WINDOWS)
    windows = prepare_eval_features(tokenizer, [example.question], [example.context], SMALL_WINDOWS)
    assert features[0].start_position == features[0].end_position == 0  # not in the first window
    second = features[1]
    assert second.start_position != 0
    assert _decoded(windows[1].offsets, second.start_position, second.end_position, example.context) == answer


def test_unanswerable_examples_point_every_window_at_cls() -> None:
    features = prepare_train_features(make_tokenizer(), [_example(None)], SMALL_WINDOWS)
    assert len(features) > 1
    assert all(f.start_position == f.end_position == 0 for f in features)


def test_eval_windows_offsets_cover_only_the_context() -> None:
    tokenizer = make_tokenizer()
    windows = prepare_eval_features(tokenizer, ["What is insulin?"], [LONG_CONTEXT], SMALL_WINDOWS)
    for window in windows:
        assert len(window.input_ids) <= SMALL_WINDOWS.max_seq_length
        assert window.input_ids[window.cls_index] == tokenizer.cls_token_id
        context = window.context_mask
        # question tokens, CLS and SEP carry no offset; context tokens do, in increasing order
        assert not context[: 1 + len(tokenizer.tokenize("What is insulin?")) + 1].any()
        assert (window.offsets[~context] == NO_OFFSET).all()
        assert (np.diff(window.offsets[context, 0]) > 0).all()
        assert (window.token_type_ids[context] == 1).all()
    # consecutive windows overlap, so no context token is lost between them
    for first, second in zip(windows, windows[1:], strict=False):
        assert second.offsets[second.context_mask, 0].min() <= first.offsets[first.context_mask, 0].max()


def test_eval_windows_name_their_pair() -> None:
    windows = prepare_eval_features(
        make_tokenizer(), ["q one?", "q two?"], [LONG_CONTEXT, CONTEXT_A1C], SMALL_WINDOWS
    )
    indices = [w.example_index for w in windows]
    assert indices == sorted(indices) and set(indices) == {0, 1} and indices.count(1) == 1


def test_count_multi_window() -> None:
    count = count_multi_window(
        make_tokenizer(), ["q?", "q?", "q?"], [LONG_CONTEXT, CONTEXT_A1C, LONG_CONTEXT], SMALL_WINDOWS
    )
    assert count == 2


def test_mismatched_inputs_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        prepare_eval_features(make_tokenizer(), ["a", "b"], ["c"], SMALL_WINDOWS)
    with pytest.raises(ValueError, match="doc_stride"):
        WindowSettings(max_seq_length=64, doc_stride=64)


def test_labels_decode_back_to_the_answer_through_the_span_decoder() -> None:
    """char span -> token labels -> logits peaked at those labels -> decode_question -> the same chars."""
    tokenizer = make_tokenizer()
    answer = "average blood sugar"  # only wholly inside the second window and later ones
    example = _example(answer)
    features = prepare_train_features(tokenizer, [example], SMALL_WINDOWS)
    windows = prepare_eval_features(tokenizer, [example.question], [example.context], SMALL_WINDOWS)
    logits = []
    for feature, window in zip(features, windows, strict=True):
        start, end = np.zeros(len(window.input_ids)), np.zeros(len(window.input_ids))
        start[feature.start_position] = end[feature.end_position] = 10.0
        logits.append(WindowLogits(start, end, window.offsets, window.cls_index))
    assert features[0].start_position == 0 and features[1].start_position != 0
    (reading,) = decode_question([example.context], [logits], DecodeSettings())
    best = reading.best
    assert (best.text, best.start, best.end) == (answer, example.answers[0].start, example.answers[0].end)


# A question of 999 characters (under the bot's 1,000) holds far more tokens than a window.
PASTED_QUESTION = ("a1c " * 250)[:999]


@pytest.mark.parametrize("settings", [SMALL_WINDOWS, WindowSettings(48, 16), WindowSettings(24, 16)])
def test_a_question_longer_than_the_window_is_cut_not_an_error(settings: WindowSettings) -> None:
    tokenizer = make_tokenizer()
    limit = question_token_limit(tokenizer, settings)
    assert 1 <= limit <= settings.max_seq_length // 2
    (fitted,), cut = fit_questions(tokenizer, [PASTED_QUESTION], settings)
    assert cut == 1 and PASTED_QUESTION.startswith(fitted)
    assert len(tokenizer(fitted, add_special_tokens=False)["input_ids"]) == limit
    windows = prepare_eval_features(tokenizer, [PASTED_QUESTION], [LONG_CONTEXT], settings)
    assert windows and all(w.context_mask.any() for w in windows)  # every window reads some context
    assert all(len(w.input_ids) <= settings.max_seq_length for w in windows)
    example = _example("a hormone", question=PASTED_QUESTION)
    assert prepare_train_features(tokenizer, [example], settings)
    assert count_multi_window(tokenizer, [PASTED_QUESTION], [LONG_CONTEXT], settings) == 1


def test_questions_that_fit_are_left_as_they_are() -> None:
    tokenizer = make_tokenizer()
    questions = ["  What is insulin?", "How often should feet be checked?"]
    assert fit_questions(tokenizer, questions, SMALL_WINDOWS) == (
        ["What is insulin?", "How often should feet be checked?"], 0
    )


# --- windows assembled from cached context tokens -----------------------------------------------


def _same_windows(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.example_index == b.example_index and a.cls_index == b.cls_index
        for name in ("input_ids", "token_type_ids", "offsets"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
            assert getattr(a, name).dtype == getattr(b, name).dtype, name


@pytest.mark.parametrize(
    ("settings", "cut"), [(SMALL_WINDOWS, True), (WindowSettings(max_seq_length=64, doc_stride=16), False)]
)
def test_context_tokens_give_the_tokenizers_own_windows(settings: WindowSettings, cut: bool) -> None:
    """Assembled (pairs that fit one window) or cut by the tokenizer (longer contexts), in context order,
    on first sight and from the cache."""
    tokenizer = make_tokenizer()
    contexts = [CONTEXT_INSULIN, LONG_CONTEXT, CONTEXT_FOOT, CONTEXT_A1C, LONG_CONTEXT]
    cache = ContextTokens(tokenizer, settings)
    assert cache.assembles
    for question in ("What is insulin?", "what does the a1c test measure over three months?"):
        (fitted,), _ = fit_questions(tokenizer, [question], settings)
        expected = prepare_eval_features(tokenizer, [fitted] * len(contexts), contexts, settings)
        _same_windows(cache.windows(fitted, contexts), expected)
        _same_windows(cache.windows(fitted, contexts), expected)  # again, from the kept tokens
    # At 24 tokens the long context is cut by the tokenizer; at 64 it fits and is assembled.
    assert (len([w for w in expected if w.example_index == 1]) > 1) is cut


def test_a_tokenizer_with_another_pair_template_is_never_assembled() -> None:
    from tokenizers.processors import TemplateProcessing  # noqa: PLC0415

    tokenizer = make_tokenizer()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )  # fmt: skip
    cache = ContextTokens(tokenizer, SMALL_WINDOWS)
    assert not cache.assembles
    contexts = [CONTEXT_INSULIN, CONTEXT_FOOT]
    expected = prepare_eval_features(tokenizer, ["What is insulin?"] * 2, contexts, SMALL_WINDOWS)
    _same_windows(cache.windows("What is insulin?", contexts), expected)


def test_context_tokens_forget_the_oldest_context_beyond_capacity() -> None:
    cache = ContextTokens(make_tokenizer(), SMALL_WINDOWS, capacity=2)
    cache.windows("What is insulin?", [CONTEXT_INSULIN, CONTEXT_FOOT, CONTEXT_A1C])
    assert list(cache._contexts) == [CONTEXT_FOOT, CONTEXT_A1C]

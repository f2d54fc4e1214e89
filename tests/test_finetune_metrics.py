"""The SQuAD metric against hand-computed cases."""

from __future__ import annotations

import pytest

from finetune.metrics import exact_match, f1, normalize_answer, squad_scores


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Pancreas.", "pancreas"),
        ("  a   hormone, made  ", "hormone made"),
        ("an A1C test", "a1c test"),
        ("theory of the atom", "theory of atom"),  # 'the' only as a whole word
        ("Café—naïve", "café—naïve"),  # non-ASCII punctuation stays, as in the official script
        ("U.S.A", "usa"),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_exact_match_after_normalisation() -> None:
    assert exact_match("the Pancreas", "pancreas.") == 1.0
    assert exact_match("pancreas gland", "pancreas") == 0.0


def test_f1_hand_computed() -> None:
    # prediction "blood sugar level" vs gold "average blood sugar": 2 common tokens
    # precision 2/3, recall 2/3 -> F1 2/3
    assert f1("blood sugar level", "average blood sugar") == pytest.approx(2 / 3)
    # "insulin" vs "insulin hormone": precision 1, recall 1/2 -> F1 2/3
    assert f1("insulin", "the insulin hormone") == pytest.approx(2 / 3)
    # repeated tokens count once per match: 1 common of 2 predicted -> precision 1/2, recall 1 -> 2/3
    assert f1("sugar sugar", "sugar") == pytest.approx(2 / 3)
    assert f1("liver", "pancreas") == 0.0
    assert f1("", "") == 1.0 and f1("", "pancreas") == 0.0


def test_scores_take_the_best_gold_and_count_missing_predictions_as_zero() -> None:
    golds = {"a": ["the pancreas", "pancreas gland"], "b": ["blood sugar"], "c": ["insulin"]}
    predictions = {"a": "pancreas gland", "b": "sugar"}  # c unanswered
    scores = squad_scores(predictions, golds)
    # EM: a=1, b=0, c=0 -> 33.33; F1: a=1, b=2*(1*0.5)/1.5=2/3, c=0 -> 55.56
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert scores["n"] == 3
    assert "HasAns_f1" not in scores


def test_v2_scores_split_has_answer_and_no_answer() -> None:
    golds = {"a": ["pancreas"], "b": [], "c": []}
    predictions = {"a": "pancreas", "b": "", "c": "liver"}
    scores = squad_scores(predictions, golds)
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert (scores["HasAns_exact"], scores["HasAns_f1"], scores["HasAns_total"]) == (100.0, 100.0, 1)
    assert (scores["NoAns_exact"], scores["NoAns_f1"], scores["NoAns_total"]) == (50.0, 50.0, 2)


def test_extra_predictions_are_ignored() -> None:
    assert squad_scores({"a": "x", "zzz": "y"}, {"a": ["x"]})["exact_match"] == 100.0

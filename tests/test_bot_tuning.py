"""Choosing the answer (margins), calibrated confidence, and the tuner's offline search on top of them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bot.calibration import (
    CALIBRATION_FILE,
    FEATURES,
    Calibration,
    CalibrationError,
    Coverage,
    Outcome,
    coverage_at,
    coverage_of,
    fit,
    out_of_fold,
    threshold_for_precision,
)
from bot.fusion import UNCALIBRATED_THRESHOLD, Scoring, answer_threshold, decide, rank_candidates
from finetune.types import Reading, Span
from retrieval import ScoredPassage
from tests.bot_fakes import corpus_passages

TUNER_PATH = Path(__file__).resolve().parent.parent / "bench" / "tune_engine.py"


def reading(*scores: float, null: float = 0.0, texts: tuple[str, ...] = ()) -> Reading:
    """A reading with one span per score (texts s0, s1, ... unless given), best first."""
    names = texts or tuple(f"s{i}" for i in range(len(scores)))
    spans = tuple(Span(t, i, i + 1, s, 0.0) for i, (s, t) in enumerate(zip(scores, names, strict=True)))
    return Reading(spans, null)


def retrieved(*scores: float) -> list[ScoredPassage]:
    passages = corpus_passages()
    return [
        ScoredPassage(passages[i % len(passages)], s, bm25=10 * s, dense=s / 2) for i, s in enumerate(scores)
    ]


@pytest.fixture(scope="module")
def tuner() -> ModuleType:
    """The tuning library (``bot calibrate`` and ``bench/tune_engine.py`` run it)."""
    import bot.tuning  # noqa: PLC0415

    return bot.tuning


def test_the_bench_script_loads_on_the_library() -> None:
    spec = importlib.util.spec_from_file_location("tune_engine", TUNER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune_engine"] = module
    spec.loader.exec_module(module)
    assert module.Observed is __import__("bot.tuning", fromlist=["Observed"]).Observed


# --- rank_candidates ----------------------------------------------------------------------------


def test_the_margin_over_no_answer_ranks_passages_not_the_raw_span_score() -> None:
    # Passage 0: a higher span score, but its passage is surer there is no answer.
    readings = [reading(8.0, null=7.5), reading(5.0, null=-2.0)]
    candidates = rank_candidates(retrieved(0.9, 0.5), readings, retrieval_weight=0.0)
    assert [c.passage_index for c in candidates] == [1, 0]
    assert candidates[0].margin == pytest.approx(7.0) and candidates[1].margin == pytest.approx(0.5)


def test_the_retrieval_weight_can_overrule_a_small_margin_difference() -> None:
    readings = [reading(3.0, null=0.0), reading(3.5, null=0.0)]
    scores = retrieved(1.0, 0.0)
    assert rank_candidates(scores, readings, 0.0)[0].passage_index == 1
    assert rank_candidates(scores, readings, 2.0)[0].passage_index == 0


def test_features_are_complete_and_agreement_counts_the_same_answer() -> None:
    readings = [
        reading(4.0, texts=("Insulin",)),
        reading(2.0, texts=("insulin",)),
        reading(1.0, texts=("x",)),
    ]
    candidates = rank_candidates(retrieved(0.9, 0.8, 0.7), readings, 0.0)
    best = candidates[0]
    assert set(best.features) == set(FEATURES)
    assert best.features["agreement"] == pytest.approx(2 / 3)
    assert best.features["positive_share"] == pytest.approx(1.0)
    assert best.features["margin_gap"] == pytest.approx(2.0)
    assert best.features["retrieval_rank"] == 1.0 and best.features["top_dense"] == pytest.approx(0.45)


def test_passages_without_spans_give_no_candidate_and_mismatches_are_refused() -> None:
    assert rank_candidates(retrieved(0.5), [Reading((), 0.0)], 0.0) == []
    with pytest.raises(ValueError, match="1 readings for 2 passages"):
        rank_candidates(retrieved(0.5, 0.4), [reading(1.0)], 0.0)


# --- decide and Calibration -------------------------------------------------------------------------


def _calibration(threshold: float = 0.5, margin_coef: float = 2.0) -> Calibration:
    coef = tuple(margin_coef if name == "margin" else 0.0 for name in FEATURES)
    zeros = tuple(0.0 for _ in FEATURES)
    ones = tuple(1.0 for _ in FEATURES)
    return Calibration(FEATURES, zeros, ones, coef, 0.0, threshold, 0.9, top_k=5, retrieval_weight=0.0)


def test_decide_uses_the_calibrated_probability_and_its_threshold() -> None:
    sure = rank_candidates(retrieved(0.9), [reading(3.0, null=0.0)], 0.0)
    unsure = rank_candidates(retrieved(0.9), [reading(0.0, null=1.0)], 0.0)
    calibration = _calibration(threshold=0.6)
    yes, no = decide(sure, calibration, Scoring()), decide(unsure, calibration, Scoring())
    assert yes.answer and yes.confidence == pytest.approx(1 / (1 + np.exp(-6.0)))
    assert not no.answer and no.confidence < 0.6
    assert not decide(sure, calibration, Scoring(min_confidence=0.999)).answer  # an explicit override wins
    assert decide([], calibration, Scoring()).candidate is None


def test_without_calibration_the_readers_probability_decides() -> None:
    candidates = rank_candidates(retrieved(0.9), [reading(9.0, null=0.0)], 0.0)
    decision = decide(candidates, None, Scoring())
    assert decision.confidence == pytest.approx(candidates[0].probability)
    assert decision.answer == (candidates[0].probability >= UNCALIBRATED_THRESHOLD)


def test_the_threshold_an_answer_needs_is_the_override_then_the_calibrations_then_the_default() -> None:
    calibration = _calibration(threshold=0.6)
    assert answer_threshold(calibration, Scoring()) == 0.6
    assert answer_threshold(None, Scoring()) == UNCALIBRATED_THRESHOLD
    assert answer_threshold(calibration, Scoring(min_confidence=0.75)) == 0.75
    assert answer_threshold(None, Scoring(min_confidence=0.75)) == 0.75


def test_calibration_round_trips_and_broken_files_name_themselves(tmp_path: Path) -> None:
    calibration = _calibration()
    path = calibration.save(tmp_path)
    assert path == tmp_path / CALIBRATION_FILE and Calibration.load(tmp_path) == calibration
    assert Calibration.load(tmp_path / "elsewhere") is None
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CalibrationError, match=str(path)):
        Calibration.load(tmp_path)
    path.write_text(json.dumps({"version": 1, "features": ["margin", "shoe_size"]}), encoding="utf-8")
    with pytest.raises(CalibrationError, match="malformed|unknown"):
        Calibration.load(tmp_path)


def _outcomes(n: int = 240, seed: int = 0) -> list[Outcome]:
    """Synthetic questions over 12 documents: a high margin means right, with noise; 1 in 6 unanswerable."""
    rng = np.random.default_rng(seed)
    result = []
    for i in range(n):
        answerable = i % 6 != 0
        margin = float(rng.normal(2.0 if answerable else -1.0, 1.5))
        right = answerable and margin + float(rng.normal(0, 1.0)) > 1.0
        features = dict.fromkeys(FEATURES, 0.0) | {"margin": margin, "dense": float(rng.normal())}
        result.append(Outcome(f"q{i}", f"doc{i % 12}", answerable, right, features))
    return result


def test_the_fitted_threshold_reaches_the_target_precision_out_of_fold() -> None:
    outcomes = _outcomes()
    calibration = fit(outcomes, top_k=5, retrieval_weight=0.0, target_precision=0.9)
    assert calibration.report["precision"] >= 0.9
    assert calibration.coef[FEATURES.index("margin")] > 0  # more margin, more confidence
    oof = out_of_fold(outcomes)
    assert coverage_at(oof, outcomes, calibration.threshold).precision >= 0.9
    # Answering everything is less precise than what the threshold promises.
    assert coverage_at(oof, outcomes, 0.0).precision < 0.9


def test_threshold_for_precision_takes_the_most_answers_that_reach_the_target() -> None:
    outcomes = [
        Outcome(str(i), "d", True, right, {}) for i, right in enumerate([True, True, False, True, False])
    ]
    probabilities = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert threshold_for_precision(probabilities, outcomes, 0.75) == 0.6  # 3 right of 4
    assert threshold_for_precision(probabilities, outcomes, 1.0) == 0.8
    assert threshold_for_precision(probabilities, outcomes, 1.1) == 0.8  # unreachable: the best precision


# --- the tuner --------------------------------------------------------------------------------


def _observed(tuner: ModuleType, n: int = 60) -> list:
    rng = np.random.default_rng(1)
    observed = []
    for i in range(n):
        answerable = i % 5 != 0
        golds = ("s0",) if answerable else ()
        good = float(rng.normal(3.0 if answerable else -2.0, 1.0))
        readings = tuple(
            reading(good, null=0.0) if j == i % 3 else reading(-1.0, null=0.5, texts=("wrong",))
            for j in range(8)
        )
        observed.append(tuner.Observed(f"q{i}", f"doc{i % 6}", golds, tuple(retrieved(*[0.5] * 8)), readings))
    return observed


def test_the_tuner_reads_more_passages_when_the_answer_hides_lower(tuner: ModuleType) -> None:
    observed = _observed(tuner)
    scores = tuner.grid(observed, target=0.9)
    by_k = {s.k: s for s in scores}
    assert by_k[1].right_answering_all < by_k[3].right_answering_all  # answer is in passage 0, 1 or 2
    chosen = tuner.choose(scores)
    assert chosen.k >= 3 and chosen.coverage.precision >= 0.9
    held = tuner.held_out(observed, target=0.9)
    assert 0.0 <= held["right"] <= 1.0 and held["declined_unanswerable"] > 0.5


def test_the_tuner_never_chooses_fewer_passages_than_members_need(tuner: ModuleType) -> None:
    def scored(k: int, right: float) -> object:  # one setting's out-of-fold figures
        return tuner.SettingScore(k, 0.5, Coverage(0.5, 0.3, right, 0.8, 0.95), right + 0.2)

    scores = [scored(1, 0.30), scored(3, 0.28), scored(5, 0.22), scored(8, 0.215)]
    assert tuner.choose(scores).k == 5  # k=1 and k=3 answer more here, but are scored for the report only
    assert tuner.choose([scored(5, 0.20), scored(8, 0.25)]).k == 8


def test_each_candidate_names_the_passage_it_came_from(tuner: ModuleType) -> None:
    question = _observed(tuner)[0]  # its good span is in passage 0 (i % 3); the rest read "wrong"
    by_passage = {o.passage_index: o for o in tuner.outcomes([question], 3)}
    assert sorted(by_passage) == [0, 1, 2]
    assert by_passage[0].text != "wrong" and by_passage[1].text == by_passage[2].text == "wrong"


def test_direct_answers_count_in_the_figures_but_not_in_the_fit(tuner: ModuleType) -> None:
    plain = _observed(tuner)
    # Three answerable questions the engine answers from a definition: two right, one wrong; their
    # readings would have been wrong, so the calibrated path would not have got them right.
    wrong_reading = tuple(reading(-1.0, null=0.5, texts=("wrong",)) for _ in range(8))
    defined = [
        tuner.Observed(f"d{i}", f"doc{i}", ("a tumor of the pancreas",), tuple(retrieved(*[0.5] * 8)),
                       wrong_reading, text)  # fmt: skip
        for i, text in enumerate(["a tumor of the pancreas", "tumor of the pancreas", "an organ"])
    ]
    observed = plain + defined

    assert len(tuner.outcomes(observed, 3)) == len(tuner.outcomes(plain, 3))  # not fitted on
    with_them, without = tuner.score_setting(observed, 3, 0.9), tuner.score_setting(plain, 3, 0.9)
    answerable = sum(bool(q.golds) for q in plain)
    right_before = without.coverage.right * answerable
    assert with_them.coverage.right * (answerable + 3) == pytest.approx(right_before + 2)
    calibration = tuner.fit_calibration(observed, 3, 0.9)
    answered = [
        answers for outcome, answers in tuner.chosen_answers(observed, 3, calibration)
        if outcome.question_id.startswith("d")
    ]  # fmt: skip
    assert answered == [True, True, True]  # answered whatever the threshold


def test_coverage_of_decisions_made_counts_them_as_coverage_at_does(tuner: ModuleType) -> None:
    observed = _observed(tuner)
    calibration = tuner.fit_calibration(observed, 3, 0.9)
    answers = tuner.chosen_answers(observed, 3, calibration)
    outcomes, given = [o for o, _ in answers], [g for _, g in answers]
    pooled = coverage_of(given, outcomes)
    right = sum(g and o.right for o, g in answers)
    assert sum(given) > 0 and pooled.answered == pytest.approx(sum(given) / 60)
    assert pooled.right == pytest.approx(right / 48) and pooled.precision == pytest.approx(right / sum(given))
    declined = sum(not g and not o.answerable for o, g in answers)
    assert pooled.declined_unanswerable == pytest.approx(declined / 12)
    assert pooled.right <= coverage_of([True] * 60, outcomes).right  # never declining: right at most
    assert coverage_of([False] * 60, outcomes).precision == 1.0  # nothing answered: nothing wrong said


def test_is_right_is_f1_at_least_a_half(tuner: ModuleType) -> None:
    assert tuner.is_right("high blood sugar", ["high blood sugar levels"])
    assert not tuner.is_right("sugar", ["high blood sugar levels"])
    assert not tuner.is_right("anything", [])


def test_the_calibration_answers_with_its_likeliest_candidate_not_the_top_margin() -> None:
    readings = [reading(5.0, null=0.0, texts=("a",)), reading(4.0, null=0.0, texts=("b",))]
    candidates = rank_candidates(retrieved(0.1, 0.9), readings, 0.0)
    assert candidates[0].span.text == "a"  # the margin ranks passage 0 first
    coef = tuple(5.0 if name == "retrieval" else 0.0 for name in FEATURES)
    zeros, ones = tuple(0.0 for _ in FEATURES), tuple(1.0 for _ in FEATURES)
    calibration = Calibration(FEATURES, zeros, ones, coef, 0.0, 0.5, 0.8, top_k=2, retrieval_weight=0.0)
    decision = decide(candidates, calibration, Scoring())
    assert decision.candidate is not None and decision.candidate.span.text == "b"
    assert decision.confidence == pytest.approx(1 / (1 + np.exp(-4.5)))

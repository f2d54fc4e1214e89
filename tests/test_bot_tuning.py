"""The engine's pure fusion functions (hand-built inputs) and the tuner's offline search on top of them."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bot.engine import AnswerEngine
from bot.fusion import Fusion, choose_answer, rank_candidates
from finetune.postprocess import DecodeSettings, WindowLogits, decode_question
from finetune.types import Reading, Span
from tests.bot_fakes import FakeIndex, FakeReader, make_settings

TUNER_PATH = Path(__file__).resolve().parent.parent / "bench" / "tune_engine.py"


def reading(*scores: float, null: float = 0.0) -> Reading:
    """A reading with one span per score (texts s0, s1, ...), best first."""
    spans = tuple(Span(f"s{i}", i, i + 1, score, 0.0) for i, score in enumerate(scores))
    return Reading(spans, null)


@pytest.fixture(scope="module")
def tuner() -> ModuleType:
    """bench/tune_engine.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("tune_engine", TUNER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune_engine"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# --- rank_candidates ----------------------------------------------------------------------------


def test_mu_decides_between_the_reader_and_bm25() -> None:
    bm25 = [40.0, 1.0]  # passage 0: strong lexical match, weak span; passage 1: the reverse
    readings = [reading(1.0, null=-5.0), reading(6.0, null=-5.0)]
    assert rank_candidates(bm25, readings, Fusion(1.0, 10.0))[0].passage_index == 1
    assert rank_candidates(bm25, readings, Fusion(0.0, 10.0))[0].passage_index == 0
    mixed = rank_candidates(bm25, readings, Fusion(0.3, 10.0))
    for c in mixed:
        assert c.fused == pytest.approx(0.3 * c.reader + 0.7 * c.bm25)
    assert [c.fused for c in mixed] == sorted((c.fused for c in mixed), reverse=True)


def test_reader_scores_are_one_softmax_with_the_lowest_null() -> None:
    readings = [reading(2.0, null=2.0), reading(1.0, null=5.0)]
    candidates = rank_candidates([1.0, 1.0], readings, Fusion(1.0, 10.0))
    total = math.exp(2.0) + math.exp(1.0) + math.exp(2.0)  # the null is min(2, 5) = 2
    assert [c.reader for c in candidates] == pytest.approx([math.exp(2.0) / total, math.exp(1.0) / total])


def test_a_confident_null_makes_every_span_unlikely() -> None:
    sure = rank_candidates([5.0], [reading(3.0, null=-10.0)], Fusion(1.0, 10.0))
    unsure = rank_candidates([5.0], [reading(3.0, null=10.0)], Fusion(1.0, 10.0))
    assert sure[0].reader > 0.99
    assert unsure[0].reader < 0.01


def test_spans_per_passage_limits_the_candidates() -> None:
    readings = [reading(3.0, 2.0, 1.0), reading(2.5, 0.5)]
    assert len(rank_candidates([1.0, 1.0], readings, Fusion(1.0, 10.0, spans_per_passage=1))) == 2
    assert len(rank_candidates([1.0, 1.0], readings, Fusion(1.0, 10.0, spans_per_passage=2))) == 4


def test_equal_fused_scores_keep_bm25_order() -> None:
    candidates = rank_candidates([3.0, 3.0, 3.0], [reading(1.0)] * 3, Fusion(0.5, 10.0))
    assert [c.passage_index for c in candidates] == [0, 1, 2]


def test_no_spans_no_candidates_and_mismatch_is_an_error() -> None:
    assert rank_candidates([4.0], [Reading((), 0.0)], Fusion(0.5, 10.0)) == []
    with pytest.raises(ValueError, match="1 readings for 2 passages"):
        rank_candidates([1.0, 2.0], [reading(1.0)], Fusion(0.5, 10.0))


# --- choose_answer ------------------------------------------------------------------------------


def test_threshold_is_inclusive_and_refuses_below() -> None:
    candidates = rank_candidates([10.0], [reading(1.0, null=-math.inf)], Fusion(0.0, 10.0))
    assert candidates[0].fused == pytest.approx(0.5)  # bm25 10 / (10 + 10), reader weight 0
    assert choose_answer(candidates, 0.5) is candidates[0]
    assert choose_answer(candidates, 0.51) is None
    assert choose_answer([], 0.0) is None


def test_fusion_from_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, fusion_mu=0.7, bm25_half_score=4.0, spans_per_passage=3, min_confidence=0.2
    )
    assert Fusion.from_settings(settings) == Fusion(0.7, 4.0, 3, 0.2)


def test_offline_fusion_on_the_first_k_matches_the_engine_at_k(tmp_path: Path) -> None:
    """What the tuner relies on: gather(max k) then rank on the first k == answer() with top_k=k."""
    questions = ["What is brittle diabetes characterized by?", "What is an insulinoma?", "Is diabetes rare?"]
    wide = AnswerEngine.from_settings(make_settings(tmp_path), reader=FakeReader(), index=FakeIndex())
    for k in (1, 2, 3):
        settings = make_settings(tmp_path, top_k=k, fusion_mu=0.4, min_confidence=0.45)
        engine = AnswerEngine.from_settings(settings, reader=FakeReader(), index=FakeIndex())
        for question in questions:
            evidence = wide.gather(question, 3)
            scores = [sp.score for sp in evidence.retrieved[:k]]
            winner = choose_answer(
                rank_candidates(scores, evidence.readings[:k], Fusion.from_settings(settings)), 0.45
            )
            answer = engine.answer(question)
            assert answer.text == (winner.span.text if winner else None)
            if winner:
                assert answer.confidence == pytest.approx(winner.fused)


# --- the tuner's search -------------------------------------------------------------------------


def test_threshold_is_the_middle_of_the_best_run(tuner: ModuleType) -> None:
    assert tuner.pick_threshold([1.0, 2.0, 3.0, 3.0, 3.0, 1.0, 3.0]) == 3
    assert tuner.pick_threshold([5.0, 4.0]) == 0


def test_smaller_k_wins_within_one_question(tuner: ModuleType) -> None:
    setting = tuner.Setting
    best = {
        1: setting(1, 1.0, 0.9, 30.0, 48.2, 0.7, 0.6),
        5: setting(5, 0.1, 0.2, 31.0, 48.4, 1.0, 0.5),
    }
    assert tuner.choose(best, questions=206).k == 1  # 0.2 F1 apart, less than 100/206
    assert tuner.choose(best, questions=1000).k == 5  # 0.1 F1 per question: 0.2 is a real gain


def test_sweep_answers_only_when_that_pays(tuner: ModuleType) -> None:
    """One answerable question the engine gets right, one unanswerable it answers less confidently."""
    observed = [
        tuner.Observed("a", "doc", ("s0",), (5.0,), (reading(4.0, null=0.0),)),
        tuner.Observed("b", "doc", (), (5.0,), (reading(1.0, null=0.0),)),
    ]
    best = tuner.best_per_question(observed, 1, 1.0, Fusion(1.0, 10.0))
    setting = tuner.sweep_thresholds(observed, best, 1, 1.0)
    assert setting.f1 == pytest.approx(100.0)  # answer a, stay silent on b
    assert best[1][0] < setting.threshold <= best[0][0]
    assert setting.answered_share == pytest.approx(0.5)
    scores = tuner.official_scores(observed, setting, Fusion(1.0, 10.0))
    assert scores["f1"] == pytest.approx(100.0) and scores["NoAns_f1"] == pytest.approx(100.0)


def test_sweep_keeps_the_honesty_floor_even_when_answering_everything_scores_more(
    tuner: ModuleType,
) -> None:
    """Answering the unanswerable costs 0 F1 per question less than declining the answerable costs:
    F1 alone would answer everything; the floor makes the tuner decline the unanswerable question."""
    observed = [
        tuner.Observed("a", "doc", ("s0",), (5.0,), (reading(1.0, null=0.0),)),
        tuner.Observed("b", "doc", ("s0",), (5.0,), (reading(1.0, null=0.0),)),
        tuner.Observed("c", "doc", (), (5.0,), (reading(3.0, null=0.0),)),
    ]
    best = tuner.best_per_question(observed, 1, 1.0, Fusion(1.0, 10.0))
    greedy = tuner.sweep_thresholds(observed, best, 1, 1.0, min_no_answer=0.0)
    honest = tuner.sweep_thresholds(observed, best, 1, 1.0, min_no_answer=0.5)
    assert greedy.answered_share == pytest.approx(1.0) and greedy.no_answer_recall == 0.0
    assert honest.no_answer_recall == 1.0
    assert honest.f1 < greedy.f1  # the floor costs F1 here, and is kept anyway


def test_the_bot_and_finetune_predict_give_a_span_one_probability() -> None:
    """The reader's probability is one formula: ``decode_question`` and the fusion agree on it."""
    offsets = np.array([[-1, -1], [0, 5], [6, 10], [11, 16]], dtype=np.int32)
    windows = [
        [WindowLogits(np.array([1.0, 4.0, 0.5, 0.1]), np.array([1.0, 0.2, 3.0, 0.1]), offsets)],
        [WindowLogits(np.array([2.0, 0.5, 1.0, 0.1]), np.array([2.5, 0.2, 1.5, 0.1]), offsets)],
    ]
    context = "alpha beta gamma"
    readings = decode_question([context, context], windows, DecodeSettings(), top_k=2)
    candidates = rank_candidates([0.0, 0.0], readings, Fusion(1.0, 10.0, spans_per_passage=2))
    for candidate in candidates:
        assert candidate.reader == pytest.approx(candidate.span.probability)
    # and the no-answer option keeps its share: a reader unsure everywhere is not 100% sure of a span
    assert sum(c.reader for c in candidates) < 1.0

"""The answer engine: fusion maths, sentences, thresholds, one batched read, reload and reindex."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import pytest

from bot.calibration import FEATURES, Calibration
from bot.engine import AnswerEngine, EngineConfig, encoder_backend
from bot.errors import ModelDirError
from bot.fusion import Scoring
from bot.quoting import quote_around
from finetune import runtime
from finetune.postprocess import softmax_with_null
from retrieval import build_index, load_index
from tests.bot_fakes import (
    CORPUS,
    FakeIndex,
    FakeReader,
    make_settings,
    write_corpus_docs,
    write_fake_model,
)


def make_engine(tmp_path: Path, reader: FakeReader | None = None, **overrides) -> AnswerEngine:
    settings = make_settings(tmp_path, **overrides)
    return AnswerEngine.from_settings(settings, reader=reader or FakeReader(), index=FakeIndex())


# --- scoring ----------------------------------------------------------------------------------


def test_softmax_with_null_leaves_mass_for_no_answer() -> None:
    probs = softmax_with_null([2.0, 1.0], null_score=2.0)
    assert probs[0] > probs[1]
    assert sum(probs) == pytest.approx(1 - math.exp(2) / (2 * math.exp(2) + math.exp(1)))


def test_softmax_without_null_sums_to_one_and_survives_huge_logits() -> None:
    probs = softmax_with_null([1000.0, 999.0], null_score=-math.inf)
    assert sum(probs) == pytest.approx(1.0)
    assert probs[0] > probs[1]


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("First", "First one."),
        ("middle", "The middle one is here!"),
        ("end", "Is this the end?"),
        ("here! Is", "The middle one is here! Is this the end?"),
    ],
)
def test_sentence_around_finds_the_sentences_holding_the_span(needle: str, expected: str) -> None:
    text = "First one. The middle one is here! Is this the end?"
    start = text.index(needle)
    assert quote_around(text, start, start + len(needle)) == expected


# --- answering --------------------------------------------------------------------------------


def test_answer_carries_span_sentence_source_and_timings(tmp_path: Path) -> None:
    reader = FakeReader()
    engine = make_engine(tmp_path, reader)
    answer = engine.answer("What is brittle diabetes characterized by?")
    title, source, text, phrase, _ = CORPUS[0]
    assert answer.answered
    assert answer.text == phrase
    assert answer.title == title and answer.source == source
    assert answer.passage is not None and answer.passage.text == text
    assert answer.span is not None and text[answer.span.start : answer.span.end] == phrase
    assert (
        answer.sentence == "Brittle diabetes is characterized by severe instability of blood glucose levels."
    )
    assert 0.0 < answer.confidence <= 1.0
    assert answer.timings.total_ms >= answer.timings.reading_ms >= 0.0
    assert answer.retrieved[0].passage == answer.passage
    assert reader.warmed


def test_all_retrieved_passages_are_read_in_one_batched_call(tmp_path: Path) -> None:
    reader = FakeReader()
    engine = make_engine(tmp_path, reader, top_k=3)
    answer = engine.answer("diabetes insulin pancreas syndrome blood")  # matches all three passages
    assert len(answer.retrieved) == 3
    assert reader.calls == [("diabetes insulin pancreas syndrome blood", 3)]


def test_below_threshold_no_answer_points_to_best_passage(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, FakeReader({}))
    answer = engine.answer("Is brittle diabetes rare?")
    assert not answer.answered
    assert answer.span is None and answer.sentence is None
    assert answer.title == CORPUS[0][0]
    assert answer.source == CORPUS[0][1]


def test_high_threshold_refuses_even_a_found_span(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, min_confidence=0.99995)  # the fake's sure span: ~0.9999 uncalibrated
    answer = engine.answer("What is brittle diabetes characterized by?")
    assert answer.text is None
    assert answer.passage is not None and answer.passage.title == CORPUS[0][0]
    assert answer.confidence < 0.99995


def test_the_confidence_is_the_calibrated_probability(tmp_path: Path) -> None:
    zeros, ones = tuple(0.0 for _ in FEATURES), tuple(1.0 for _ in FEATURES)
    coef = tuple(0.1 if name == "margin" else 0.0 for name in FEATURES)
    calibration = Calibration(FEATURES, zeros, ones, coef, -0.5, 0.5, 0.9, top_k=1, retrieval_weight=0.0)
    settings = make_settings(tmp_path)
    engine = AnswerEngine.from_settings(
        settings, reader=FakeReader(), index=FakeIndex(), calibration=calibration
    )
    answer = engine.answer("What is brittle diabetes characterized by?")
    assert answer.answered and answer.passages_read == 1
    assert answer.confidence == pytest.approx(1 / (1 + math.exp(-(0.1 * 9.0 - 0.5))))  # margin 9 - 0


class ApproximateReader(FakeReader):
    """An int8-like reader: its exact read scores every span 20 instead of 9."""

    approximate = True

    def __init__(self) -> None:
        super().__init__()
        self.exact_reads: list[int] = []

    def read(self, question, contexts, top_k=1, *, exact=False):  # noqa: ANN001, ANN201 - the fake's
        readings = super().read(question, contexts, top_k)
        if not exact:
            return readings
        self.exact_reads.append(len(contexts))
        return [dataclasses.replace(r, spans=tuple(dataclasses.replace(s, score=20.0) for s in r.spans))
                for r in readings]  # fmt: skip


@pytest.mark.parametrize(
    ("approximate", "margin", "threshold", "rechecked"),
    [
        (True, 0.05, 0.62, True),  # 0.599 is 0.021 short of the threshold: a close call
        (True, 0.0, 0.62, False),  # re-reading switched off
        (True, 0.05, 0.70, False),  # 0.10 short: int8's rounding cannot carry it over
        (False, 0.05, 0.62, False),  # an exact reader is never re-read
    ],
)
def test_a_close_call_on_an_approximate_reader_is_read_again_exactly(
    tmp_path: Path, approximate: bool, margin: float, threshold: float, rechecked: bool
) -> None:
    zeros, ones = tuple(0.0 for _ in FEATURES), tuple(1.0 for _ in FEATURES)
    coef = tuple(0.1 if name == "margin" else 0.0 for name in FEATURES)
    calibration = Calibration(
        FEATURES, zeros, ones, coef, -0.5, threshold, 0.9, top_k=3, retrieval_weight=0.0
    )  # fmt: skip
    reader = ApproximateReader()
    reader.approximate = approximate
    settings = make_settings(tmp_path, recheck_margin=margin, top_k=3)
    engine = AnswerEngine.from_settings(settings, reader=reader, index=FakeIndex(), calibration=calibration)
    answer = engine.answer("What is brittle diabetes characterized by?")
    if rechecked:
        # The one passage with a span is re-read (it is the likeliest candidate), scored 20: 0.82.
        assert reader.exact_reads == [1] and answer.passages_rechecked == 1
        assert answer.answered and answer.confidence == pytest.approx(1 / (1 + math.exp(-(0.1 * 20.0 - 0.5))))
    else:
        assert reader.exact_reads == [] and answer.passages_rechecked == 0
        assert not answer.answered and answer.confidence == pytest.approx(1 / (1 + math.exp(-0.4)))
    assert answer.passages_read == len(answer.retrieved)


def test_nothing_retrieved_gives_no_answer_without_passage(tmp_path: Path) -> None:
    reader = FakeReader()
    engine = make_engine(tmp_path, reader)
    answer = engine.answer("zebra quantum?")
    assert answer.text is None and answer.passage is None and answer.title is None
    assert answer.confidence == 0.0
    assert reader.calls == []


def test_empty_question_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        make_engine(tmp_path).answer("   ")


# --- reload -----------------------------------------------------------------------------------


def test_warm_up_loads_the_real_index_from_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    engine = AnswerEngine.from_settings(settings, reader=FakeReader())
    answer = engine.answer("What is an insulinoma?")
    assert engine.is_warm
    assert answer.text == CORPUS[1][3]
    assert answer.title == CORPUS[1][0] and answer.source == CORPUS[1][1]
    assert answer.sentence == "An insulinoma is a tumor of the pancreas that produces too much insulin."


def test_reload_swaps_the_reader_without_dropping_a_request_in_flight(tmp_path: Path) -> None:
    old, new = FakeReader(delay_s=1.0, name="old"), FakeReader(name="new")
    settings = make_settings(tmp_path)
    write_fake_model(settings.model_dir)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    made_from = []
    engine = AnswerEngine.from_settings(
        settings, reader=old, index=FakeIndex(), reader_factory=lambda d: made_from.append(d) or new
    )
    engine.warm_up()
    results = []
    worker = threading.Thread(target=lambda: results.append(engine.answer("What is an insulinoma?")))
    worker.start()
    assert old.entered.wait(timeout=30)  # the request is now inside old.read()
    engine.reload()
    assert worker.is_alive()  # reload did not wait for (or break) the request in flight
    worker.join()
    assert results[0].text == CORPUS[1][3]
    assert made_from == [settings.served_model_dir()]
    assert engine.answer("What is an insulinoma?").text == CORPUS[1][3]
    assert len(new.calls) == 1 and len(old.calls) == 1


def test_reindex_builds_and_serves_the_new_documents(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    docs = write_corpus_docs(settings.docs_dir)
    build_index(docs, settings.index_dir)
    engine = AnswerEngine.from_settings(settings, reader=FakeReader({"stevia": "leaves of the plant"}))
    assert engine.answer("What is stevia made from?").passage is None
    assert engine.answer("what is stevia?").basis == "reader"  # no page defines it yet
    (docs / "stevia.md").write_text("# Stevia\n\nStevia is a sweetener made from the leaves of the plant.\n")
    report = engine.reindex()
    assert (report.documents, report.skipped) == (4, [])
    answer = engine.answer("What is stevia made from?")
    assert answer.text == "leaves of the plant" and answer.title == "Stevia" and answer.source is None
    # The direct answers are rebuilt with the index: the new page's defining sentence answers.
    defined = engine.answer("what is stevia?")
    assert defined.basis == "definition"
    assert defined.sentence == "Stevia is a sweetener made from the leaves of the plant."


def test_reindex_rebuilds_the_index_that_reload_serves(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write_fake_model(settings.model_dir)
    docs = write_corpus_docs(settings.docs_dir)
    build_index(docs, settings.index_dir)
    other = tmp_path / "other-index"
    build_index(docs, other)
    stevia = FakeReader({"stevia": "leaves of the plant"})
    engine = AnswerEngine.from_settings(settings, reader=stevia, reader_factory=lambda _d: stevia)
    engine.reload(index_dir=other)
    (docs / "stevia.md").write_text("# Stevia\n\nStevia is a sweetener made from the leaves of the plant.\n")
    engine.reindex()
    assert engine.index_dir == other
    assert len(load_index(other).passages) == len(load_index(settings.index_dir).passages) + 1
    assert engine.answer("What is stevia made from?").text == "leaves of the plant"


def test_reload_does_not_fall_back_while_a_training_run_renames_the_model(tmp_path: Path) -> None:
    """The default model dir, once served, vanishing for a moment is not "serve the shipped reader"."""
    settings = make_settings(tmp_path)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    config = EngineConfig.from_settings(settings)
    config = dataclasses.replace(config, fallback_model_dir=tmp_path / "shipped")  # as for the default
    made_from: list[Path] = []
    engine = AnswerEngine(config, reader_factory=lambda d: made_from.append(d) or FakeReader())
    write_fake_model(settings.model_dir)
    engine.warm_up()
    assert made_from == [settings.model_dir]
    # finetune train's final swap: the old output is renamed away before the new one is renamed in.
    settings.model_dir.rename(tmp_path / "var" / ".model.old")
    with pytest.raises(ModelDirError, match=str(settings.model_dir)):
        engine.reload()
    assert made_from == [settings.model_dir]
    assert engine.model_dir == settings.model_dir


def test_the_default_model_dir_falls_back_until_it_holds_a_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    shipped = write_fake_model(tmp_path / "shipped")
    config = dataclasses.replace(EngineConfig.from_settings(settings), fallback_model_dir=shipped)
    engine = AnswerEngine(config, reader_factory=lambda _d: FakeReader())
    engine.warm_up()
    assert engine.model_dir == shipped
    write_fake_model(settings.model_dir)
    engine.reload()
    assert engine.model_dir == settings.model_dir


def test_a_configured_model_dir_that_is_missing_is_an_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, model_dir=tmp_path / "typo")
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    engine = AnswerEngine.from_settings(settings, reader_factory=lambda _d: FakeReader())
    with pytest.raises(ModelDirError, match="typo"):
        engine.warm_up()


def test_engine_config_holds_no_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, telegram_bot_token="123:secret")
    config = EngineConfig.from_settings(settings)
    assert "secret" not in repr(config)
    assert config.scoring == Scoring(
        settings.retrieval_weight, settings.min_confidence, settings.spans_per_passage,
        settings.recheck_margin,
    )  # fmt: skip
    assert config.top_k == settings.top_k


def test_the_engine_reports_its_readers_backend_and_the_encoder_follows_it(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.warm_up()
    assert engine.backend == "fake"
    assert encoder_backend("torch") == "torch"
    assert encoder_backend("onnx-int8") == encoder_backend("onnx") == "auto"
    assert encoder_backend("openvino") == "openvino"
    served = runtime.auto_cpu_backend().name
    assert encoder_backend("auto") == ("openvino" if served == "openvino" else "auto")
    settings = make_settings(tmp_path, reader_backend="onnx", retrieval_mode="hybrid")
    assert EngineConfig.from_settings(settings).reader_backend == "onnx"


def test_a_declined_off_topic_question_points_to_no_page(tmp_path: Path) -> None:
    from bot.answer import Timings  # noqa: PLC0415
    from bot.engine import POINTER_MIN_CONFIDENCE  # noqa: PLC0415
    from retrieval import ScoredPassage  # noqa: PLC0415

    settings = make_settings(tmp_path)
    build_index(write_corpus_docs(settings.docs_dir), settings.index_dir)
    passage = AnswerEngine.from_settings(settings, reader=FakeReader()).gather("insulinoma", 1).retrieved[0]
    assert isinstance(passage, ScoredPassage)
    timings = Timings(0.0, 0.0, 0.0)
    on_topic = AnswerEngine._no_answer((passage,), POINTER_MIN_CONFIDENCE + 0.2, timings)
    off_topic = AnswerEngine._no_answer((passage,), POINTER_MIN_CONFIDENCE / 2, timings, point=False)
    assert on_topic.passage == passage.passage and on_topic.title == passage.passage.title
    assert off_topic.passage is None and off_topic.title is None and off_topic.retrieved == (passage,)

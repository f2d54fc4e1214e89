"""``bot export-feedback``: SQuAD v2 that finetune accepts, stable ids, privacy skips, atomic writes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import atomic, cli
from bot.engine import AnswerEngine
from bot.feedback import export_feedback, parse_since
from bot.store import Store
from finetune.squad import load_squad
from tests.bot_fakes import CORPUS, FakeIndex, FakeReader, FixedClock, make_settings

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ANSWERED = "What is brittle diabetes characterized by?"
UNANSWERED = "Is brittle diabetes rare?"
SUMMARY_KEYS = ["output", "questions", "contexts", "skipped"]

runner = CliRunner()


@pytest.fixture
def engine(tmp_path: Path) -> AnswerEngine:
    return AnswerEngine.from_settings(make_settings(tmp_path), reader=FakeReader(), index=FakeIndex())


def make_store(tmp_path: Path, clock: FixedClock | None = None, **overrides) -> Store:
    """A store on HELPLINE_DB's path (the CLI finds it there too)."""
    return Store.from_settings(
        make_settings(tmp_path, db_path=Path(os.environ["HELPLINE_DB"]), **overrides),
        clock=clock or FixedClock(NOW),
    )


def fill(store: Store, engine: AnswerEngine) -> dict[str, int]:
    """One liked answer, one disliked answer, one unanswered question."""
    ids = {
        "liked": store.log_question(1, ANSWERED, engine.answer(ANSWERED)),
        "disliked": store.log_question(2, ANSWERED + " really", engine.answer(ANSWERED)),
        "unanswered": store.log_question(3, UNANSWERED, engine.answer(UNANSWERED)),
    }
    store.record_feedback(ids["liked"], 1, helpful=True)
    store.record_feedback(ids["disliked"], 2, helpful=False)
    return ids


def qas(path: Path) -> list[tuple[dict, dict]]:
    """(paragraph, question) pairs of an exported file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [(p, qa) for article in document["data"] for p in article["paragraphs"] for qa in p["qas"]]


def test_export_is_squad_v2_that_finetune_accepts_without_rejections(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    store = make_store(tmp_path)
    fill(store, engine)
    out = tmp_path / "out" / "feedback.json"
    report = export_feedback(store, out)
    data = load_squad([out])  # finetune's own loader and validator
    assert data.report.rejected == ()
    assert data.report.repaired == 0
    assert report.questions == 2  # the liked answer is not up for review
    assert report.contexts == data.report.paragraphs
    assert len(data.examples) == sum(1 for _ in qas(out))
    assert {e.question for e in data.examples} == {ANSWERED + " really", UNANSWERED}
    assert json.loads(out.read_text(encoding="utf-8"))["version"] == "v2.0"


def test_bot_answer_is_prefilled_only_in_its_own_passage(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path)
    fill(store, engine)
    out = tmp_path / "feedback.json"
    export_feedback(store, out)
    brittle_text, answer = CORPUS[0][2], CORPUS[0][3]
    disliked = [(p, qa) for p, qa in qas(out) if qa["question"] == ANSWERED + " really"]
    assert len(disliked) >= 1
    for paragraph, qa in disliked:
        if paragraph["context"] == brittle_text:
            assert qa["is_impossible"] is False
            (gold,) = qa["answers"]
            assert gold["text"] == answer
            assert brittle_text[gold["answer_start"] :].startswith(answer)
            assert qa["helpline"]["not_helpful_votes"] == 1
        else:
            assert qa["is_impossible"] is True and qa["answers"] == []
    unanswered = [qa for _, qa in qas(out) if qa["question"] == UNANSWERED]
    assert unanswered and all(qa["is_impossible"] for qa in unanswered)


def test_titles_and_sources_are_kept(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path)
    fill(store, engine)
    out = tmp_path / "feedback.json"
    export_feedback(store, out)
    articles = json.loads(out.read_text(encoding="utf-8"))["data"]
    by_title = {a["title"]: a["source"] for a in articles}
    assert by_title["Brittle diabetes"] == CORPUS[0][1]


def test_ids_are_stable_across_exports_and_unique(tmp_path: Path, engine: AnswerEngine) -> None:
    clock = FixedClock(NOW)
    store = make_store(tmp_path, clock)
    fill(store, engine)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    export_feedback(store, first)
    clock.now = NOW + timedelta(minutes=5)
    # An answered question without votes is not exported; an unanswered one is.
    store.log_question(4, "What is an insulinoma?", engine.answer("What is an insulinoma?"))
    store.log_question(5, "Does brittle diabetes hurt?", engine.answer("Does brittle diabetes hurt?"))
    export_feedback(store, second)
    old_ids = [qa["id"] for _, qa in qas(first)]
    new_ids = [qa["id"] for _, qa in qas(second)]
    assert len(set(old_ids)) == len(old_ids)
    assert len(set(new_ids)) == len(new_ids)
    assert set(old_ids) < set(new_ids)  # the same questions keep their ids; only the new one is added


def test_questions_without_stored_text_are_skipped_and_counted(tmp_path: Path, engine: AnswerEngine) -> None:
    private = make_store(tmp_path, store_question_text=False)
    private.log_question(1, UNANSWERED, engine.answer(UNANSWERED))
    disliked = private.log_question(2, ANSWERED, engine.answer(ANSWERED))
    private.record_feedback(disliked, 2, helpful=False)
    private.log_question(3, ANSWERED, engine.answer(ANSWERED))  # answered, no vote: not up for review
    private.close()
    store = make_store(tmp_path)
    store.log_question(4, UNANSWERED, engine.answer(UNANSWERED))
    out = tmp_path / "feedback.json"
    report = export_feedback(store, out)
    assert report.skipped == 2
    assert report.questions == 1
    assert {qa["question"] for _, qa in qas(out)} == {UNANSWERED}


def test_since_keeps_only_recent_questions(tmp_path: Path, engine: AnswerEngine) -> None:
    clock = FixedClock(NOW - timedelta(days=2))
    store = make_store(tmp_path, clock)
    store.log_question(1, "Is brittle diabetes old news?", engine.answer("Is brittle diabetes old news?"))
    clock.now = NOW
    store.log_question(2, UNANSWERED, engine.answer(UNANSWERED))
    out = tmp_path / "feedback.json"
    report = export_feedback(store, out, parse_since((NOW - timedelta(days=1)).date().isoformat()))
    assert report.questions == 1
    assert {qa["question"] for _, qa in qas(out)} == {UNANSWERED}


def test_parse_since_accepts_dates_and_times_and_names_bad_values() -> None:
    assert parse_since("2026-11-26") == "2026-11-26T00:00:00.000000+00:00"
    assert parse_since("2026-11-26T10:00+02:00") == "2026-11-26T08:00:00.000000+00:00"
    with pytest.raises(ValueError, match="'yesterday'"):
        parse_since("yesterday")


def test_failed_write_leaves_the_old_file_and_no_temp_files(
    tmp_path: Path, engine: AnswerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path)
    fill(store, engine)
    out = tmp_path / "feedback.json"
    out.write_text("previous export", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)  # the writer export_feedback uses
    with pytest.raises(OSError, match="disk full"):
        export_feedback(store, out)
    assert out.read_text(encoding="utf-8") == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["feedback.json"]


def test_cli_json_summary_and_file(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path)
    fill(store, engine)
    store.close()
    out = tmp_path / "feedback.json"
    result = runner.invoke(cli.app, ["export-feedback", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == SUMMARY_KEYS
    assert summary["output"] == str(out) and summary["questions"] == 2 and summary["skipped"] == 0
    assert load_squad([out]).report.rejected == ()


def test_cli_human_summary_goes_to_stderr(tmp_path: Path, engine: AnswerEngine) -> None:
    make_store(tmp_path).close()
    out = tmp_path / "feedback.json"
    result = runner.invoke(cli.app, ["export-feedback", "--out", str(out)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "wrote 0 questions" in result.stderr
    assert load_squad([out]).examples == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--since", "last week"], "--since must be an ISO date"), ([], "no database at")],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, ["export-feedback", "--out", str(tmp_path / "f.json"), *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f.json").exists()

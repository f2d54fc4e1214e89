"""Loading and checking SQuAD files: every accepted shape, every rejection and every file error."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

from finetune.atomic import write_json_atomic
from finetune.squad import (
    SquadFormatError,
    load_squad,
    parse_squad,
    sample_examples,
    split_articles,
    split_by_context,
)
from tests.finetune_fixtures import CONTEXT_INSULIN, squad_document, write_json, write_squad_file


def _with_question(qa: dict, context: str = CONTEXT_INSULIN, title: str = "Insulin") -> dict:
    """A one-question document around ``qa``."""
    return {"version": "1.1", "data": [{"title": title, "paragraphs": [{"context": context, "qas": [qa]}]}]}


def test_loads_v11_every_article_paragraph_question_and_answer(tmp_path: Path) -> None:
    squad_file = write_squad_file(tmp_path)
    data = load_squad([squad_file])
    report = data.report
    assert (report.articles, report.paragraphs, report.questions, report.answers) == (2, 3, 5, 6)
    assert [e.id for e in data.examples] == ["q1", "q2", "q3", "q4", "q5"]
    q2 = data.examples[1]
    assert [a.text for a in q2.answers] == ["the pancreas", "pancreas"]
    assert q2.title == "Insulin" and q2.source == str(squad_file)
    assert all(e.context[a.start : a.end] == a.text for e in data.examples for a in e.answers)


def test_loads_gzipped_files(tmp_path: Path) -> None:
    path = tmp_path / "squad.json.gz"
    path.write_bytes(gzip.compress(json.dumps(squad_document()).encode()))
    assert len(load_squad([path]).examples) == 5


def test_v2_unanswerable_questions_and_annotation_tool_extras() -> None:
    document = squad_document("v2.0")
    qas = document["data"][0]["paragraphs"][0]["qas"]
    qas.append(
        {
            "id": "imp",
            "question": "Who?",
            "answers": [],
            "is_impossible": True,
            "plausible_answers": [{"text": "insulin", "answer_start": 0}],
        }
    )
    qas.append({"id": "empty", "question": "When?", "answers": [], "annotator": "x", "meta": {"k": 1}})
    data = parse_squad(document, "v2.json")
    by_id = {e.id: e for e in data.examples}
    assert by_id["imp"].is_impossible and by_id["empty"].is_impossible
    assert data.report.unanswerable == 2 and data.has_unanswerable
    assert not data.report.rejected


@pytest.mark.parametrize(
    ("qa", "reason"),
    [
        ({"id": "x", "answers": [{"text": "a hormone", "answer_start": 11}]}, "missing field 'question'"),
        (
            {"id": "x", "question": "  ", "answers": [{"text": "a hormone", "answer_start": 11}]},
            "empty question",
        ),
        ({"id": "x", "question": "What?"}, "missing field 'answers'"),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "a hormone"}]},
            "missing field 'answer_start'",
        ),
        ({"id": "x", "question": "What?", "answers": [{"answer_start": 11}]}, "missing field 'text'"),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "", "answer_start": 11}]},
            "empty answer text",
        ),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "a hormone", "answer_start": "11"}]},
            "is not an integer",
        ),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "glucagon", "answer_start": 11}]},
            "answer text 'glucagon' is not at answer_start 11",
        ),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "the body", "answer_start": 11}]},
            "is not at answer_start 11",
        ),  # in the context, but far from its offset: not repaired
        ({"id": "x", "question": "What?", "answers": "a hormone"}, "field 'answers' is str"),
        # Negative offsets are refused, not "repaired" to an occurrence found from the far end.
        (
            {"id": "x", "question": "What?", "answers": [{"text": "pancreas", "answer_start": -60}]},
            "answer_start -60 is negative",
        ),
        (
            {"id": "x", "question": "What?", "answers": [{"text": "Insulin", "answer_start": -1}]},
            "answer_start -1 is negative",
        ),
    ],
)
def test_rejects_bad_questions_with_file_title_and_id(qa: dict, reason: str) -> None:
    data = parse_squad(_with_question(qa), "bad.json")
    assert not data.examples
    (rejection,) = data.report.rejected
    assert rejection.id == "x"
    assert rejection.reason.startswith("bad.json: article 'Insulin', question x: ")
    assert reason in rejection.reason


def test_rejects_every_question_of_an_empty_or_missing_context() -> None:
    qa = {"id": "x", "question": "What?", "answers": [{"text": "a", "answer_start": 0}]}
    empty = parse_squad(_with_question(qa, context="   "), "f.json")
    assert "empty context" in empty.report.rejected[0].reason
    document = _with_question(qa)
    del document["data"][0]["paragraphs"][0]["context"]
    missing = parse_squad(document, "f.json")
    assert "missing field 'context'" in missing.report.rejected[0].reason


def test_reports_articles_and_paragraphs_without_questions_lists() -> None:
    document = {"data": [{"title": "A"}, {"title": "B", "paragraphs": [{"context": "text"}]}]}
    reasons = [r.reason for r in parse_squad(document, "f.json").report.rejected]
    assert reasons == [
        "f.json: article 'A': missing 'paragraphs' list",
        "f.json: article 'B' paragraph 0: missing 'qas' list",
    ]


@pytest.mark.parametrize(
    ("text", "start", "expected_start", "expected_text"),
    [
        (" a hormone", 10, 11, "a hormone"),  # leading whitespace
        ("a hormone", 14, 11, "a hormone"),  # offset 3 characters late
        ("a hormone", 8, 11, "a hormone"),  # offset 3 characters early
        ("hormone ", 13, 13, "hormone"),  # trailing whitespace
    ],
)
def test_repairs_small_answer_start_drift(
    text: str, start: int, expected_start: int, expected_text: str
) -> None:
    qa = {"id": "x", "question": "Q?", "answers": [{"text": text, "answer_start": start}]}
    data = parse_squad(_with_question(qa), "f.json")
    (answer,) = data.examples[0].answers
    assert (answer.start, answer.text) == (expected_start, expected_text)
    assert data.report.repaired == 1 and not data.report.rejected


def test_repair_picks_the_occurrence_nearest_the_offset() -> None:
    context = "sugar, sugar and sugar"
    qa = {"id": "x", "question": "Q?", "answers": [{"text": "sugar", "answer_start": 8}]}
    data = parse_squad(_with_question(qa, context=context), "f.json")
    assert data.examples[0].answers[0].start == 7


def test_duplicate_ids_in_one_file_are_a_file_error() -> None:
    document = squad_document()
    document["data"][1]["paragraphs"][0]["qas"][0]["id"] = "q1"
    with pytest.raises(
        SquadFormatError, match=r"^dup.json: duplicate question id 'q1' \(also in dup.json\)$"
    ):
        parse_squad(document, "dup.json")


def test_duplicate_ids_across_files_are_a_file_error(tmp_path: Path) -> None:
    first = write_json(tmp_path / "a.json", squad_document())
    second = write_json(tmp_path / "b.json", squad_document())
    with pytest.raises(SquadFormatError, match="duplicate question id 'q1'") as error:
        load_squad([first, second])
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_non_utf8_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(squad_document()).replace("hormone", "hormöne").encode("latin-1"))
    with pytest.raises(
        SquadFormatError, match=r"latin1.json: not UTF-8 text \(byte 0xf6 at offset \d+\)"
    ) as e:
        load_squad([path])
    assert "\n" not in str(e.value)


def test_truncated_json_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(squad_document())[:300])
    with pytest.raises(
        SquadFormatError, match=r"cut.json: invalid JSON at line 1 column \d+: .*truncated"
    ) as e:
        load_squad([path])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["[" * 200_000, '{"data": ' * 50_000])
def test_absurdly_nested_json_is_a_one_line_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nested.json"
    path.write_text(text)
    with pytest.raises(SquadFormatError, match="nested.json: JSON nested too deeply") as e:
        load_squad([path])
    assert "\n" not in str(e.value)


def test_truncated_gzip_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(json.dumps(squad_document()).encode())[:-20])
    with pytest.raises(SquadFormatError, match="cut.json.gz: cannot read the gzip data"):
        load_squad([path])


@pytest.mark.parametrize("document", [[], {"version": "1.1"}, {"data": {"title": "x"}}])
def test_non_squad_json_is_a_file_error(tmp_path: Path, document: object) -> None:
    path = write_json(tmp_path / "other.json", document)
    with pytest.raises(SquadFormatError, match="other.json: not a SQuAD file"):
        load_squad([path])


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(SquadFormatError, match="no such file"):
        load_squad([tmp_path / "absent.json"])


def test_sample_is_seeded_random_not_the_first_n(tmp_path: Path) -> None:
    squad_file = write_squad_file(tmp_path)
    examples = load_squad([squad_file]).examples
    many = tuple(
        dataclasses.replace(e, id=f"{e.id}-{i}") for i in range(40) for e in examples
    )  # 200, article-sorted
    sample = sample_examples(many, 20, seed=1)
    assert len(sample) == 20 and len({e.id for e in sample}) == 20
    assert sample != many[:20]
    assert sample == sample_examples(many, 20, seed=1)
    assert sample != sample_examples(many, 20, seed=2)
    assert sample_examples(many, None, seed=1) == many


def test_split_by_context_keeps_each_context_on_one_side(tmp_path: Path) -> None:
    squad_file = write_squad_file(tmp_path)
    examples = load_squad([squad_file]).examples
    train, dev = split_by_context(examples, 0.34, seed=0)
    assert len(train) + len(dev) == len(examples) and train and dev
    assert not {e.context for e in train} & {e.context for e in dev}
    with pytest.raises(ValueError, match="dev_fraction"):
        split_by_context(examples, 1.5, seed=0)


def test_split_articles_and_atomic_write(tmp_path: Path) -> None:
    train, dev = split_articles(squad_document(), "f.json", 1, seed=3)
    titles = [a["title"] for a in train["data"]] + [a["title"] for a in dev["data"]]
    assert sorted(titles) == ["Care", "Insulin"] and len(dev["data"]) == 1
    out = tmp_path / "sub" / "dev.json.gz"
    write_json_atomic(out, dev)
    assert json.loads(gzip.decompress(out.read_bytes())) == dev
    assert [p.name for p in out.parent.iterdir()] == ["dev.json.gz"]  # no temp file left behind
    with pytest.raises(ValueError, match="--dev-articles must be between 1 and 1"):
        split_articles(squad_document(), "f.json", 2, seed=3)

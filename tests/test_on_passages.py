"""scripts/on_passages.py: annotated questions move onto the index passages that hold their answer, at the
annotated place, and ``finetune check`` accepts what it writes."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from finetune.squad import GoldAnswer, SquadExample, load_squad
from retrieval import Passage
from tests.script_modules import load_script

PARAGRAPH = "Low blood sugar: 90% of people shake. High blood sugar: 90% of people are thirsty."


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("on_passages")


def example(answer_at: int, answer: str = "90%", qid: str = "q1", title: str = "Sugar") -> SquadExample:
    return SquadExample(qid, title, PARAGRAPH, "how many are thirsty?", (GoldAnswer(answer, answer_at),), "x")


def passage(text: str, doc_id: str = "sugar.md", title: str = "Sugar") -> Passage:
    return Passage(
        id=doc_id + text[:8], text=text, doc_id=doc_id, title=title, source="", start=0, end=len(text)
    )


def test_a_repeated_answer_is_placed_where_it_was_annotated(script: ModuleType) -> None:
    second = PARAGRAPH.index("90%", 20)
    text = "Intro sentence. " + PARAGRAPH
    assert script.locate(example(second), text) == text.index("90%", text.index("High"))
    assert script.locate(example(PARAGRAPH.index("90%")), text) == text.index("90%")


def test_a_passage_without_the_annotated_place_does_not_hold_the_answer(script: ModuleType) -> None:
    second = PARAGRAPH.index("90%", 20)
    assert script.locate(example(second), "Low blood sugar: 90% of people shake.") is None


def test_questions_go_to_every_passage_of_their_document_that_holds_the_answer(script: ModuleType) -> None:
    second = PARAGRAPH.index("90%", 20)
    passages = [
        passage("Intro. " + PARAGRAPH),
        passage("High blood sugar: 90% of people are thirsty. More text follows here."),
        passage("High blood sugar: 90% of people are thirsty.", doc_id="other.md"),  # another document
        passage("Nothing about it here."),
    ]
    unanswerable = SquadExample("q2", "Sugar", PARAGRAPH, "is it curable?", (), "x")
    nowhere = example(PARAGRAPH.index("Low"), answer="Low blood sugar", qid="q3", title="Elsewhere")
    document, missing = script.on_passages(
        [example(second), unanswerable, nowhere], passages, {"q1": "sugar.md"}
    )
    placed = [(p["context"], qa) for a in document["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert [qa["id"] for _, qa in placed] == ["q1-p1", "q1-p2"]
    for context, qa in placed:
        answer = qa["answers"][0]
        assert context[answer["answer_start"] :].startswith("90% of people are thirsty")
    assert missing == 1  # q3: no passage of its title holds it; q2 (unanswerable) is left out


def test_what_it_writes_passes_finetune_check(script: ModuleType, tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"version": "v2.0", "data": [{
        "title": "Sugar", "doc": "sugar.md", "paragraphs": [{"context": PARAGRAPH, "qas": [{
            "id": "q1", "question": "how many are thirsty?", "is_impossible": False,
            "answers": [{"text": "90%", "answer_start": PARAGRAPH.index("90%", 20)}]}]}]}]}))  # fmt: skip
    examples = load_squad([source]).examples
    document, missing = script.on_passages(
        examples, [passage("Intro. " + PARAGRAPH)], script.documents_of([source])
    )
    out = tmp_path / "out.json"
    out.write_text(json.dumps(document))
    checked = load_squad([out])
    assert missing == 0 and len(checked.examples) == 1
    assert not checked.report.rejected and not checked.report.repaired

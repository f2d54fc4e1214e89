"""The documents' own questions: what a question asks, which sections answer it, and the engine
reading them (or giving a table's introduction) before the ordinary path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import DIRECT_CONFIDENCE, AnswerEngine
from bot.headings import Headings, asked
from retrieval import Passage
from tests.bot_fakes import FakeIndex, FakeReader, make_settings

BRITTLE = Passage(
    "p1",
    "What causes brittle diabetes? There are multiple causes. Emotional stress plays a role. "
    "How might brittle diabetes be treated? Management depends on the cause.",
    "gard-brittle.md",
    "Brittle diabetes",
    None,
    0,
    150,
)
TABLE = Passage(
    "p2",
    "What are the signs and symptoms of Bangstad syndrome? The Human Phenotype Ontology provides the"
    " following list of signs and symptoms for Bangstad syndrome. Hypothyroidism 90% Insulin resistance 90%",
    "gard-bangstad.md",
    "Bangstad syndrome",
    None,
    0,
    180,
)


@pytest.mark.parametrize(
    ("question", "kind", "subject"),
    [
        ("What causes brittle diabetes?", "causes", {"brittle", "diabete"}),
        ("what causes Brittle Diabetes", "causes", {"brittle", "diabete"}),
        ("How might brittle diabetes be treated?", "treatment", {"brittle", "diabete"}),
        ("What are the treatments for Brittle diabetes ?", "treatment", {"brittle", "diabete"}),  # MedQuAD
        ("What are the symptoms of Bangstad syndrome ?", "symptoms", {"bangstad", "syndrome"}),
        ("How to diagnose Bangstad syndrome ?", "diagnosis", {"bangstad", "syndrome"}),
        ("Is Wolfram syndrome inherited?", "inheritance", {"wolfram", "syndrome"}),
    ],
)
def test_a_question_asks_a_kind_of_thing_about_a_subject(question: str, kind: str, subject: set[str]) -> None:
    what = asked(question)
    assert what is not None and (what.kind, set(what.subject)) == (kind, subject)


@pytest.mark.parametrize(
    "question",
    [
        "how is it diagnosed and treated?",  # two kinds at once
        "what are the symptoms?",  # no subject
        "is genetic testing available for wolfram syndrome?",  # testing is not inheritance
        "what is brittle diabetes?",
    ],
)
def test_other_questions_ask_nothing_we_look_up(question: str) -> None:
    assert asked(question) is None


def test_each_documents_question_is_answered_by_the_text_after_it() -> None:
    headings = Headings.from_passages([BRITTLE])

    (cause,) = headings.sources("what causes brittle diabetes")
    (treatment,) = headings.sources("What are the treatments for Brittle diabetes ?")

    assert cause.text == "There are multiple causes. Emotional stress plays a role."
    assert treatment.text == "Management depends on the cause."
    assert headings.sources("what causes bangstad syndrome?") == []  # another subject
    assert headings.sources("how is brittle diabetes diagnosed?") == []  # another kind


def test_a_section_that_introduces_a_table_is_answered_by_its_introduction() -> None:
    (source,) = Headings.from_passages([TABLE]).sources("What are the symptoms of Bangstad syndrome ?")
    assert source.whole
    assert source.text.startswith("The Human Phenotype Ontology provides the following list")
    assert source.text.endswith("for Bangstad syndrome.")


def test_the_engine_answers_from_the_section_then_the_table_without_the_reader(tmp_path: Path) -> None:
    reader = FakeReader({"causes": "Emotional stress"})
    index = FakeIndex([BRITTLE, TABLE])
    engine = AnswerEngine.from_settings(make_settings(tmp_path), reader=reader, index=index)

    cause = engine.answer("What causes brittle diabetes?")
    assert (cause.text, cause.basis, cause.passage) == ("Emotional stress", "section", BRITTLE)
    assert cause.confidence == DIRECT_CONFIDENCE["section"]
    assert reader.calls == [("What causes brittle diabetes?", 1)]

    table = engine.answer("What are the symptoms of Bangstad syndrome ?")
    assert table.basis == "section" and table.text.startswith("The Human Phenotype Ontology provides")
    assert table.sentence == table.text
    assert TABLE.text[table.span.start : table.span.end] == table.text
    assert len(reader.calls) == 1  # nothing to read

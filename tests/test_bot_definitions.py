"""Definition questions: which questions ask what a term is, which sentences define one, where the
engine reads the answer, and that everything else still takes the ordinary path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.definitions import Definitions, defined_terms, definition_topic, term_key
from bot.engine import DIRECT_CONFIDENCE, AnswerEngine
from retrieval import Passage
from retrieval.synonyms import SynonymTable
from tests.bot_fakes import FakeIndex, FakeReader, make_settings


def passage(doc_id: str, title: str, text: str, start: int = 0) -> Passage:
    return Passage(f"{doc_id}:{start}", text, doc_id, title, None, start, start + len(text))


@pytest.mark.parametrize(
    ("question", "term"),
    [
        ("What is (are) Brittle diabetes ?", "brittle diabetes"),  # MedQuAD's form
        ("what is brittle diabetes exactly?", "brittle diabetes"),
        ("what's an insulinoma", "insulinoma"),
        ("Whats A1C??", "a1c"),
        ("what are triglycerides?", "triglyceride"),
        ("hi, what is familial hyperinsulinism in simple words", "familial hyperinsulinism"),
        ("What does DIDMOAD mean?", "didmoad"),
        ("sorry newbie q, what does hypo actually mean", "hypo"),
        ("my mum has diabetes: what is metformin?", "metformin"),
        ("define prediabetes", "prediabetes"),
        ("Tell me about Wolfram syndrome.", "wolfram syndrome"),
    ],
)
def test_definition_questions_name_their_term(question: str, term: str) -> None:
    assert definition_topic(question) == term_key(term)


@pytest.mark.parametrize(
    "question",
    [
        "how is brittle diabetes treated?",
        "what causes type 1 diabetes?",
        "is brittle diabetes inherited?",
        "what is it?",  # no term
        "What is this?",
        "",
    ],
)
def test_other_questions_are_not_definition_questions(question: str) -> None:
    assert definition_topic(question) is None


def test_term_keys_ignore_order_articles_and_plurals() -> None:
    assert term_key("Diabetes Type 1") == term_key("type 1 diabetes")
    assert term_key("an insulinoma") == term_key("Insulinomas")
    assert term_key("type 1 diabetes") != term_key("type 2 diabetes")


@pytest.mark.parametrize(
    ("sentence", "terms"),
    [
        ("Brittle diabetes is characterized by severe instability.", ["brittle diabetes"]),
        ("Summary : A1C is a blood test for type 2 diabetes and prediabetes.", ["a1c"]),
        ("Hyperglycemia means high blood sugar or glucose.", ["hyperglycemia"]),
        (
            "Diabetes mellitus type 1 (DM1) is a condition in which beta cells stop producing insulin.",
            ["diabetes mellitus type 1", "dm1"],
        ),
        (
            "Diabetic kidney disease, also called diabetic nephropathy, is kidney disease from diabetes.",
            ["diabetic kidney disease", "diabetic nephropathy"],
        ),
        (
            'The term "diabetic heart disease" (DHD) refers to heart disease.',
            ["diabetic heart disease", "dhd"],
        ),
        ("It is a rare condition.", []),  # a pronoun defines nothing
        ("Insulin resistance can lead to type 2 diabetes.", []),  # says something, defines nothing
        ("What are the signs and symptoms of Insulinoma?", []),
        ("Nerve damage is likely due to a combination of factors:", []),  # says why, not what
        ("Type 2 diabetes is caused by insulin resistance.", []),
    ],
)
def test_defining_sentences_name_what_they_define(sentence: str, terms: list[str]) -> None:
    assert defined_terms(sentence) == [term_key(t) for t in terms]


def test_sources_prefer_the_document_about_the_term_then_its_opening_then_other_documents() -> None:
    about = passage(
        "gard-brittle.md", "Brittle diabetes", "Brittle diabetes is a rare form of diabetes. More."
    )
    about_later = passage("gard-brittle.md", "Brittle diabetes", "It is rare. Really rare.", start=60)
    other = passage(
        "niddk-causes.md", "Causes of Diabetes", "Text first. Brittle diabetes is unstable diabetes."
    )
    definitions = Definitions.from_passages([other, about_later, about])

    sources = definitions.sources("what is brittle diabetes?")

    assert [(s.passage.doc_id, s.text) for s in sources] == [
        ("gard-brittle.md", "Brittle diabetes is a rare form of diabetes."),
        ("gard-brittle.md", about.text),  # the opening passage of the document about it
        ("niddk-causes.md", "Brittle diabetes is unstable diabetes."),
    ]
    assert definitions.sources("how is brittle diabetes treated?") == []
    assert definitions.sources("what is insulinoma?") == []


def test_among_other_documents_the_better_retrieved_one_comes_first() -> None:
    first = passage("a.md", "A", "Insulin is a hormone made in the pancreas.")
    second = passage("b.md", "B", "Insulin is a hormone that moves glucose into cells.")
    definitions = Definitions.from_passages([first, second])

    assert [s.passage.doc_id for s in definitions.sources("what is insulin", ["b.md", "a.md"])] == [
        "b.md",
        "a.md",
    ]
    assert [s.passage.doc_id for s in definitions.sources("what is insulin")] == ["a.md", "b.md"]


def test_an_opening_that_asks_a_question_is_not_a_definition_source() -> None:
    table = passage(
        "gard-insulinoma.md", "Insulinoma", "What are the signs and symptoms of Insulinoma? A list."
    )
    assert Definitions.from_passages([table]).sources("what is insulinoma?") == []


def test_a_sentence_repeated_by_overlapping_passages_is_one_source() -> None:
    text = "Insulin is a hormone. It moves glucose."
    definitions = Definitions.from_passages(
        [passage("a.md", "Insulin", text), passage("a.md", "Insulin", text[:21], start=0)]
    )
    sentences = [s for s in definitions.sources("what is insulin?") if s.text != text]
    assert len(sentences) == 1


# --- in the engine ----------------------------------------------------------------------------

DEFINED = passage("gard-insulinoma.md", "Insulinoma", "An insulinoma is a tumor of the pancreas. It is rare.")
OTHER = passage(
    "niddk-hypo.md", "Hypoglycemia", "An insulinoma can cause low blood sugar; it has many causes."
)


def engine_with(tmp_path: Path, reader: FakeReader) -> AnswerEngine:
    settings = make_settings(tmp_path)
    return AnswerEngine.from_settings(settings, reader=reader, index=FakeIndex([OTHER, DEFINED]))


def test_a_definition_question_is_answered_from_the_defining_sentence(tmp_path: Path) -> None:
    reader = FakeReader({"insulinoma": "a tumor of the pancreas"})
    answer = engine_with(tmp_path, reader).answer("What's an insulinoma?")

    assert (answer.text, answer.basis, answer.passage) == ("a tumor of the pancreas", "definition", DEFINED)
    assert answer.confidence == DIRECT_CONFIDENCE["definition"]
    assert answer.sentence == "An insulinoma is a tumor of the pancreas."
    assert DEFINED.text[answer.span.start : answer.span.end] == answer.text  # offsets in the passage
    assert reader.calls == [("What's an insulinoma?", 1)]  # one short read instead of the top k
    assert DEFINED in [sp.passage for sp in answer.retrieved]  # logged, for export-feedback


def test_an_unretrieved_passage_a_direct_answer_came_from_is_logged_too(tmp_path: Path) -> None:
    index = FakeIndex([OTHER, DEFINED])
    engine = AnswerEngine.from_settings(
        make_settings(tmp_path), reader=FakeReader({"insulinoma": "a tumor of the pancreas"}), index=index
    )
    engine.warm_up()  # the definitions are built from all passages here
    index.passages = [OTHER]  # from now on retrieval does not find DEFINED
    answer = engine.answer("What's an insulinoma?")
    assert answer.passage == DEFINED
    assert [sp.passage for sp in answer.retrieved] == [OTHER, DEFINED]


def test_a_definition_source_without_a_convincing_span_falls_back_to_the_ordinary_path(
    tmp_path: Path,
) -> None:
    reader = FakeReader({"insulinoma": "many causes"})  # found in OTHER only, by the ordinary path
    answer = engine_with(tmp_path, reader).answer("What's an insulinoma?")

    assert answer.basis == "reader"
    assert answer.passage == OTHER
    sources_read = 2  # the defining sentence, then the opening passage of the document about it
    assert [n for _, n in reader.calls] == [1] * sources_read + [2]


def test_other_questions_take_the_ordinary_path(tmp_path: Path) -> None:
    reader = FakeReader({"tumor": "a tumor of the pancreas"})
    answer = engine_with(tmp_path, reader).answer("Can a tumor cause low blood sugar?")
    assert answer.basis == "reader"
    assert reader.calls == [("Can a tumor cause low blood sugar?", 2)]


def test_direct_answer_tells_the_tuner_what_answer_gives(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, FakeReader({"insulinoma": "a tumor of the pancreas"}))
    defined = engine.direct_answer("what is an insulinoma?")
    assert defined is not None and defined.text == engine.answer("what is an insulinoma?").text
    assert engine.direct_answer("Can an insulinoma cause low blood sugar?") is None


def test_a_document_about_the_term_comes_first_even_when_its_opening_is_a_question() -> None:
    opening = passage("gard-x.md", "Insulinoma", "What are the signs and symptoms of Insulinoma? A list.")
    later = passage("gard-x.md", "Insulinoma", "An insulinoma is a tumor of the pancreas.", start=60)
    other = passage("niddk-hypo.md", "Hypoglycemia", "Insulinomas are insulin-producing tumors.")
    definitions = Definitions.from_passages([opening, later, other])

    sources = definitions.sources("what is an insulinoma?", ["niddk-hypo.md", "gard-x.md"])
    assert [s.passage.doc_id for s in sources] == ["gard-x.md", "niddk-hypo.md"]


def test_a_term_defined_only_under_a_synonym_is_read_there() -> None:
    synonyms = SynonymTable.from_lines(
        ["t1d, t1dm, type 1 diabetes", "nerve damage, neuropathy, diabetic neuropathy"]
    )
    definitions = Definitions.from_passages(
        [
            passage("ghr-t1d.md", "type 1 diabetes", "Type 1 diabetes is a disorder of high blood sugar."),
            passage("a.md", "A", "Nerve damage is a problem. Diabetic neuropathy is a nerve disorder."),
        ],
        synonyms,
    )

    assert [s.text for s in definitions.sources("what is T1D?")] == [
        "Type 1 diabetes is a disorder of high blood sugar.",
        "Type 1 diabetes is a disorder of high blood sugar.",  # and the opening of the page about it
    ]
    # The term's own sources first, then each synonym's: the engine reads on until one convinces.
    assert [s.text for s in definitions.sources("what's neuropathy")] == [
        "Nerve damage is a problem.",
        "Diabetic neuropathy is a nerve disorder.",
    ]

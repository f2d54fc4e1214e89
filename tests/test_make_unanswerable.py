"""scripts/make_unanswerable.py: negatives never hold the answer, and finetune check accepts them."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from finetune.squad import GoldAnswer, SquadExample, load_squad
from tests.script_modules import load_script

CONTEXT = (
    "Insulin is a hormone made by the pancreas. It lets glucose enter the cells. "
    "Type 1 diabetes is an autoimmune disease in which the body attacks its beta cells. "
    "People with type 1 diabetes need insulin every day, and they check their blood glucose often."
)
OTHER = "Exercise lowers blood glucose and helps the body use insulin well, which many people find helpful."


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("make_unanswerable")


def example(question: str, answer: str, context: str = CONTEXT, qid: str = "q1") -> SquadExample:
    return SquadExample(qid, "Diabetes", context, question, (GoldAnswer(answer, context.index(answer)),), "x")


def test_removing_the_answer_sentence_leaves_no_answer(script: ModuleType) -> None:
    ex = example("what kind of disease is type 1 diabetes?", "an autoimmune disease")
    context = script.without_answer_sentences(ex)
    assert context is not None and "autoimmune" not in context and "pancreas" in context


def test_a_context_that_repeats_the_answer_elsewhere_is_not_used(script: ModuleType) -> None:
    ex = example("what does the pancreas make?", "insulin")  # "insulin" is in two other sentences too
    assert script.without_answer_sentences(ex) is None


def test_squad_negatives_are_valid_squad_v2(script: ModuleType, tmp_path: Path) -> None:
    examples = [
        example("what kind of disease is type 1 diabetes?", "an autoimmune disease", qid="a"),
        example("what lowers blood glucose?", "Exercise", context=OTHER, qid="b"),
        example("how often do people with type 1 need insulin?", "every day", qid="c"),
    ]
    negatives = script.squad_negatives(examples, n_questions=3, seed=1)
    assert negatives and all(n.kind in ("removed", "retrieved") for n in negatives)
    golds = {e.id: e.answers[0].text for e in examples}
    for n in negatives:
        source = n.id.split("-neg-")[0]
        assert golds[source].lower() not in n.context.lower()
    out = tmp_path / "neg.json"
    out.write_text(json.dumps(script.to_squad_v2(negatives)), encoding="utf-8")
    data = load_squad([out])
    assert data.report.rejected == () and all(e.is_impossible for e in data.examples)

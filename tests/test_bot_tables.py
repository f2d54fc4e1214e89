"""A bare frequency cell of a GARD symptom table is answered with its row."""

from __future__ import annotations

import pytest

from bot.fusion import rank_candidates
from bot.tables import TABLE_HEADER, with_table_row
from finetune.types import Reading, Span
from retrieval import Passage, ScoredPassage

# As the GARD pages hold their Human Phenotype Ontology tables: flattened into one line.
TABLE = (
    "What are the signs and symptoms of Bangstad syndrome? The Human Phenotype Ontology provides the "
    f"following list of signs and symptoms for Bangstad syndrome. Signs and Symptoms {TABLE_HEADER} "
    "Abnormality of dental enamel 90% Aminoaciduria 90% Cognitive impairment 7.5% Seizures 1/25 "
    "Autosomal recessive inheritance - Diabetes mellitus - Short stature 50% The frequency may be listed "
    "as a fraction."
)


def cell(text: str, occurrence: int = 1, context: str = TABLE) -> Span:
    """The span the reader would give for the ``occurrence``-th ``text`` of ``context``."""
    start = -1
    for _ in range(occurrence):
        start = context.index(text, start + 1)
    return Span(text, start, start + len(text), score=3.5, probability=0.4)


@pytest.mark.parametrize(
    ("text", "occurrence", "row"),
    [
        ("90%", 1, "Abnormality of dental enamel 90%"),
        ("90%", 2, "Aminoaciduria 90%"),  # the row of the cell the reader marked, not the first one
        ("7.5%", 1, "Cognitive impairment 7.5%"),
        ("1/25", 1, "Seizures 1/25"),
        ("50%", 1, "Short stature 50%"),  # after rows without a frequency (" - "), only its own name
    ],
)
def test_a_frequency_cell_becomes_its_row(text: str, occurrence: int, row: str) -> None:
    span = with_table_row(cell(text, occurrence), TABLE)
    assert span.text == row
    assert TABLE[span.start : span.end] == row
    assert span.score == 3.5 and span.probability == 0.4  # the reader's evidence is unchanged


def test_spans_that_are_not_a_table_cell_are_left_alone() -> None:
    name = cell("Aminoaciduria")
    assert with_table_row(name, TABLE) is name
    # A percentage in a sentence, or in a table of another kind (the A1C pages), has no GARD header.
    sentence = "Each child has a 25% (1 in 4) risk to have the condition."
    assert with_table_row(cell("25%", context=sentence), sentence).text == "25%"
    # A header after the cell belongs to another table.
    later = "Most people with diabetes below 7% " + TABLE
    assert with_table_row(cell("7%", context=later), later).text == "7%"


def test_a_cell_without_a_plausible_name_before_it_is_left_alone() -> None:
    no_name = f"{TABLE_HEADER} 90% Seizures 50%"
    assert with_table_row(cell("90%", context=no_name), no_name).text == "90%"
    run_on = f"{TABLE_HEADER} " + "word " * 40 + "90%"
    assert with_table_row(cell("90%", context=run_on), run_on).text == "90%"


def test_candidates_carry_the_row_so_features_labels_and_answers_agree() -> None:
    passage = Passage("p1", TABLE, "gard-bangstad.md", "Bangstad syndrome", None, 0, len(TABLE))
    span = cell("90%", 2)
    (candidate,) = rank_candidates([ScoredPassage(passage, 0.8)], [Reading((span,), 0.0)], 0.0)
    assert candidate.span.text == "Aminoaciduria 90%"
    assert candidate.features["answer_words"] == pytest.approx(1.0986, abs=1e-3)  # log(1 + 2 words)

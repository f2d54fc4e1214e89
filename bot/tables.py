"""GARD's symptom tables, answered with the row instead of a bare number.

GARD pages list a condition's signs and symptoms as a Human Phenotype Ontology table, which the
documents hold flattened into one line: "... Approximate number of patients (when available)
Abnormality of dental enamel 90% Aminoaciduria 90% ... Autosomal recessive inheritance - ...". Asked
"do kids with <condition> have problems with their teeth?", the reader marks the frequency cell, "90%":
a number that answers nothing unless the member can see which symptom it belongs to (in a first probe of
member questions on the training documents, 14 of 232 chosen answers were such cells). The answer is the
row: the symptom's name and its frequency, "Abnormality of dental enamel 90%".
"""

from __future__ import annotations

import dataclasses
import re

from finetune.types import Span

# The header that ends GARD's table introduction; a frequency cell only counts after it (elsewhere a
# bare "25%" or "7%" is part of a sentence or of another kind of table, as in the A1C pages).
TABLE_HEADER = "Approximate number of patients (when available)"
_FREQUENCY = re.compile(r"\d+(?:\.\d+)?%|\d+/\d+")
_CELL = re.compile(rf"\s*(?:{_FREQUENCY.pattern})\s*")
# Rows without a frequency are separated by " - "; a symptom's name is never this long.
_NO_FREQUENCY = " - "
MAX_NAME_CHARS = 100


def with_table_row(span: Span, text: str) -> Span:
    """``span`` widened to its table row when it is a bare frequency cell of a GARD symptom table.

    Args:
        span: a span the reader found in ``text`` (character offsets into it).
        text: the passage.

    Returns:
        The row ("<symptom> <frequency>", the same score) or ``span`` itself when it is not a cell.
    """
    if not _CELL.fullmatch(span.text):
        return span
    header = text.rfind(TABLE_HEADER, 0, span.start)
    if header < 0:
        return span
    row_start = header + len(TABLE_HEADER)
    for previous in _FREQUENCY.finditer(text, row_start, span.start):
        row_start = previous.end()
    between = text[row_start : span.start]
    name = between.rsplit(_NO_FREQUENCY, 1)[-1].strip()
    if not name or len(name) > MAX_NAME_CHARS:
        return span
    start = row_start + between.rindex(name)
    return dataclasses.replace(span, text=text[start : span.end], start=start)

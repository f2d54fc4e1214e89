"""A MedQuAD-style probe: the bot asked MedQuAD's kinds of questions about the bundled documents.

MedQuAD's diabetes questions are not on this machine, so this approximates them from the documents
themselves (which come from MedQuAD): "What is (are) <title> ?" for every document (gold: the text
before its first section question, at least its first paragraph) and every section question written
in a document ("What causes brittle diabetes?"; gold: that section). An answer is *grounded* when its
span starts inside the gold region, or when another document holds the same words (four of the
documents are copies of "Causes of Diabetes": the answer's quote is in the gold region's text); *wrong
page* when it comes from another document that does not. Both the
questions and the gold regions are derived, not annotated: read the figures as a probe, not a score.

Usage:
    .venv/bin/python bench/probe_medquad_style.py [var/probe-medquad.jsonl]   # rows written there
"""

import argparse
import json
import re
from pathlib import Path

from bot.config import Settings
from bot.engine import AnswerEngine
from bot.quoting import ELLIPSIS
from retrieval.ingest import read_folder

# A section question as the documents write them: a line that starts with a question word, ends in "?".
SECTION_QUESTION = re.compile(r"(?m)^(What|How|Who|Is|Are|Can|Where|When|Why|Do|Does)[^?\n]{5,150}\?")
OUTCOMES = ("grounded", "wrong_page", "same_page_off", "declined")


def probe_questions(docs_dir: Path) -> list[dict]:
    """The probe's questions, each with its document and gold region (offsets in the normalised text)."""
    items = []
    for d in read_folder(docs_dir)[0]:
        sections = [(m.start(), m.end(), m.group(0)) for m in SECTION_QUESTION.finditer(d.text)]
        first_paragraph = d.text.find("\n\n", 1)
        if first_paragraph < 0:  # a one-paragraph document
            first_paragraph = len(d.text)
        summary_end = sections[0][0] if sections and sections[0][0] > 0 else first_paragraph
        end = max(summary_end, first_paragraph)
        items.append(
            {"q": f"What is (are) {d.title} ?", "doc": d.doc_id, "start": 0, "end": end, "kind": "what-is",
             "gold": d.text[:end]}
        )  # fmt: skip
        for i, (_, question_end, question) in enumerate(sections):
            section_end = sections[i + 1][0] if i + 1 < len(sections) else len(d.text)
            items.append(
                {"q": question, "doc": d.doc_id, "start": question_end, "end": section_end, "kind": "section",
                 "gold": d.text[question_end:section_end]}
            )  # fmt: skip
    return items


def outcome(answer, item: dict) -> str:  # noqa: ANN001 - bot.answer.Answer
    if not answer.answered:
        return "declined"
    if answer.passage.doc_id != item["doc"]:
        return "grounded" if answer.sentence.strip(ELLIPSIS) in item["gold"] else "wrong_page"
    position = answer.passage.start + answer.span.start
    return "grounded" if item["start"] <= position < item["end"] else "same_page_off"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=Path("var/probe-medquad.jsonl"),
        help="where the rows are written (JSON lines)",
    )
    out = parser.parse_args().out
    items = probe_questions(Path("data/docs"))
    engine = AnswerEngine.from_settings(Settings())
    engine.warm_up()
    rows = []
    for item in items:
        answer = engine.answer(item["q"])
        rows.append(
            {
                **{key: value for key, value in item.items() if key != "gold"},
                "outcome": outcome(answer, item),
                "answer": answer.text,
                "confidence": round(answer.confidence, 3),
            }
        )
    n = len(rows)
    print(
        f"{n} questions: "
        + ", ".join(f"{o} {sum(r['outcome'] == o for r in rows) / n:.1%}" for o in OUTCOMES)
    )
    for kind in ("what-is", "section"):
        sub = [r for r in rows if r["kind"] == kind]
        print(
            f"  {kind} ({len(sub)}): "
            + ", ".join(f"{o} {sum(r['outcome'] == o for r in sub)}" for o in OUTCOMES)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Put annotated questions on the passages the bot reads, instead of the paragraphs they were written on.

The annotations (``data/diabetes-qa``) are written on a document's paragraphs (about 60 words each). The
bot reads the index's passages: about 125 words, several paragraphs, with overlap (``retrieval``). The
unanswerable twins of ``make_unanswerable.py docs`` are partly such passages. A reader trained on
paragraph positives and passage negatives can learn the form of the text instead of whether it answers.
Measured, not shipped (``models/reader/README.md``, "Tried, not shipped: stage 7"): batches 8 and 9 put
on passages (1,217 answerable questions -> 1,450 examples), with 500 twins, stage 5's SQuAD replay and 330
SQuAD twins, 1 epoch at lr 2e-5 from the shipped reader. It said "an answer is here" in the gold passage
for 79-81% of the member test questions against 50.8%, and the MedQuAD-style probe's answers came from
the gold section 58.7-59.9% of the time against 51.7%; but it answered no more members right (out of
fold 25.9% and 23.0% over two seeds against 25.9%; member test 22.3% against 23.3%).

Each answerable question becomes one example per passage of its document that holds its answer *at the
annotated place*. The document is the article's ``doc`` (the file name, as ``data/diabetes-qa/build.py``
writes it and the index keeps it); an article without one matches passages by title. The place is found
by the answer with some of the paragraph's text before it or after it, so a repeated number is not taken
from the wrong row. Questions whose answer is in no passage are left out and counted: boilerplate the
index drops, or a copy of a document that is not indexed. Unanswerable questions are left out too: a
passage joins neighbouring paragraphs, and one of them may answer what the annotated paragraph did not;
the twins made from these examples supply the "no answer" side.

Usage (then ``make_unanswerable.py docs OUT --per-question 1 --sample 500`` and ``finetune train``, as
``scripts/make_reader.sh``'s ``member_stage``):
    python data/diabetes-qa/build.py untaught later runs/reader/later.json
    python data/diabetes-qa/build.py untaught later2 runs/reader/later2.json
    python scripts/on_passages.py runs/reader/later.json runs/reader/later2.json \
        --docs data/docs --out runs/reader/passages.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from finetune.atomic import write_json_atomic
from finetune.squad import SquadExample, load_squad
from retrieval import IndexSettings, Passage, build_index
from retrieval.store import load_index_files

# How much paragraph text beside the answer must match, tried longest first: enough to place a short
# answer ("90%", "10 pounds") on its own row, and short enough to survive a passage boundary.
CONTEXT_WIDTHS = (60, 30, 15)


def locate(example: SquadExample, passage: str) -> int | None:
    """Where ``example``'s first answer, at its annotated place, starts in ``passage`` (None: not there).

    The answer matches with up to ``CONTEXT_WIDTHS`` characters of its paragraph before it or after it;
    with none beside it (the answer opens or closes the paragraph), only an answer found once counts.
    """
    answer = example.answers[0]
    start, end = answer.start, answer.start + len(answer.text)
    for width in CONTEXT_WIDTHS:
        before = example.context[max(0, start - width) : start]
        found = passage.find(before + answer.text)
        if found >= 0 and (before or passage.count(answer.text) == 1):
            return found + len(before)
        after = example.context[end : end + width]
        found = passage.find(answer.text + after)
        if found >= 0 and (after or passage.count(answer.text) == 1):
            return found
    return None


def documents_of(paths: Sequence[Path]) -> dict[str, str]:
    """Question id -> its article's ``doc`` (the document's file name), where the article names one."""
    documents = {}
    for path in paths:
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            if "doc" in article:
                for paragraph in article["paragraphs"]:
                    documents.update({qa["id"]: article["doc"] for qa in paragraph["qas"]})
    return documents


def on_passages(
    examples: Sequence[SquadExample], passages: Sequence[Passage], documents: dict[str, str]
) -> tuple[dict, int]:
    """The answerable examples on the passages of their document holding their answer, as a SQuAD v2
    document, and the number of answerable examples found in no passage. ``documents``: question id ->
    document file name (``documents_of``); a question without one matches passages by title."""
    by_document: dict[str, list[Passage]] = defaultdict(list)
    by_title: dict[str, list[Passage]] = defaultdict(list)
    for passage in passages:
        by_document[passage.doc_id].append(passage)
        by_title[passage.title].append(passage)
    grouped: dict[tuple[str | None, str, str], list[dict]] = defaultdict(list)
    missing = 0
    for example in (e for e in examples if e.answers):
        placed = 0
        document = documents.get(example.id)
        for passage in by_title[example.title] if document is None else by_document[document]:
            start = locate(example, passage.text)
            if start is None:
                continue
            placed += 1
            grouped[(document, example.title, passage.text)].append(
                {
                    "id": f"{example.id}-p{placed}",
                    "question": example.question,
                    "is_impossible": False,
                    "answers": [{"text": example.answers[0].text, "answer_start": start}],
                }
            )
        missing += placed == 0
    articles: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    for (document, title, context), qas in grouped.items():
        articles[(document, title)].append({"context": context, "qas": qas})
    data = [
        {"title": title, **({"doc": document} if document else {}), "paragraphs": paragraphs}
        for (document, title), paragraphs in articles.items()
    ]
    return {"version": "v2.0", "data": data}, missing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="SQuAD files of annotated questions")
    parser.add_argument("--docs", type=Path, required=True, help="the documents the bot indexes")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    examples = load_squad(list(args.data)).examples
    with tempfile.TemporaryDirectory() as tmp:  # the bot's own chunking, as make_unanswerable.py does
        build_index(args.docs, Path(tmp) / "index", IndexSettings())
        _, passages = load_index_files(Path(tmp) / "index")
    document, missing = on_passages(examples, passages, documents_of(args.data))
    write_json_atomic(args.out, document)
    written = sum(len(p["qas"]) for a in document["data"] for p in a["paragraphs"])
    answerable = sum(bool(e.answers) for e in examples)
    print(
        f"{answerable} answerable questions -> {written} passage examples in {args.out} "
        f"({missing} in no passage, {len(examples) - answerable} unanswerable left out)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

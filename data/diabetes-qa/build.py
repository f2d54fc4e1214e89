"""Build the diabetes QA sets (SQuAD v2 JSON) from annotation records.

Annotators write one JSON object a line in ``src/*.jsonl``::

    {"doc": "gard-0000849-brittle-diabetes.md", "para": 2, "id": "brittle-03",
     "question": "what causes brittle diabetes", "answer": "Emotional stress", "occurrence": 1}

``para`` indexes the document's paragraphs as ``python build.py paragraphs`` prints them (whitespace
collapsed, NFKC), ``answer`` is an exact substring of that paragraph ("" for an unanswerable question)
and ``occurrence`` (default 1) picks which occurrence of the answer text is meant. Computing
``answer_start`` here, instead of by hand, is what keeps every offset exact.

Two more folders hold questions in the same format about the *train* documents, never trained on:
members' questions land on the documents the bot serves, and the reader has read those in training, so
it is surer of itself there than on the dev set's unseen documents.

- ``test/*.jsonl`` (``test.json``): the member test set, asked by ``bench/probe_member_questions.py``
  and never fitted on.
- ``calib/*.jsonl`` (``calib.json``): fitted on by ``bot calibrate`` beside ``dev.json``, so the
  calibrated confidence has seen questions about the served documents too.

Never copy these records into ``src/``.

``later/*.jsonl`` holds questions about the train documents written after those two sets (batch 8, for
the reader's stage 6); they are not built into ``train.json`` (stages 2-5 trained on it as it is), but
given by ``untaught`` to the stage that trains on them, without the questions whose answer is a test or
calibration question's answer in the same paragraph text. ``later2/*.jsonl`` (batch 9, for the opt-in
stage 7) was written around those answers (each writer saw them and the questions already asked, per
paragraph), so ``untaught`` leaves none of it out.

Usage:
    python data/diabetes-qa/build.py paragraphs            # data/diabetes-qa/paragraphs.jsonl
    python data/diabetes-qa/build.py build                 # train, dev, test and calib .json
    python data/diabetes-qa/build.py untaught later OUT.json   # later/*.jsonl, held-apart facts left out
    python data/diabetes-qa/build.py untaught later2 OUT.json  # the same for later2/*.jsonl (batch 9)
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
# Whole documents held out for dev, so no document feeds both sides (see dev_docs.txt).
DEV_DOCS_FILE = HERE / "dev_docs.txt"
# Folders of questions about the train documents that no training step may see (see above).
HELD_APART = ("test", "calib")
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def read_doc(path: Path) -> tuple[str, list[str]]:
    """Title and body paragraphs of one bundled Markdown document."""
    blocks = [normalise(b) for b in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
    blocks = [b for b in blocks if b]
    title = blocks[0].lstrip("#").strip() if blocks and blocks[0].startswith("#") else path.stem
    body = [b for b in blocks[1:] if not b.startswith("Source:")]
    return title, body


def dump_paragraphs() -> None:
    out = HERE / "paragraphs.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for path in sorted(DOCS.glob("*.md")):
            title, paras = read_doc(path)
            for i, p in enumerate(paras):
                f.write(json.dumps({"doc": path.name, "title": title, "para": i,
                                    "words": len(p.split()), "text": p}, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


def load_records(folder: str = "src") -> list[dict]:
    records = []
    for src in sorted((HERE / folder).glob("*.jsonl")):
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{src.name}:{n}: bad JSON: {e}")
                rec["_where"] = f"{folder}/{src.name}:{n}"
                rec["_folder"] = folder
                records.append(rec)
    return records


def answer_start(context: str, answer: str, occurrence: int, where: str) -> int:
    start = -1
    for _ in range(occurrence):
        start = context.find(answer, start + 1)
        if start < 0:
            sys.exit(f"{where}: answer {answer!r} (occurrence {occurrence}) not in the paragraph")
    return start


def squad_record(rec: dict, docs: dict[str, tuple[str, list[str]]]) -> tuple[str, str, int, str, dict]:
    """(doc, title, para, context, SQuAD qa) of one checked annotation record."""
    where = rec["_where"]
    if rec["doc"] not in docs:
        sys.exit(f"{where}: unknown doc {rec['doc']!r}")
    title, paras = docs[rec["doc"]]
    if not 0 <= rec["para"] < len(paras):
        sys.exit(f"{where}: para {rec['para']} out of range for {rec['doc']}")
    context, answer = paras[rec["para"]], rec["answer"]
    qa = {"id": rec["id"], "question": rec["question"], "is_impossible": not answer, "answers": []}
    if answer:
        start = answer_start(context, answer, rec.get("occurrence", 1), where)
        qa["answers"] = [{"text": answer, "answer_start": start}]
    return rec["doc"], title, rec["para"], context, qa


def write_squad(groups: dict[tuple[str, str, int, str], list], out: Path) -> int:
    """Write grouped questions as one SQuAD v2 file (temp file, then rename); the number written."""
    by_doc: dict[tuple[str, str], list] = defaultdict(list)
    for (doc, title, _, context), qas in sorted(groups.items()):
        by_doc[(doc, title)].append({"context": context, "qas": qas})
    data = [{"title": title, "doc": doc, "paragraphs": paras} for (doc, title), paras in by_doc.items()]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": "v2.0", "data": data}, indent=1, ensure_ascii=False))
    tmp.replace(out)
    return sum(len(p["qas"]) for a in data for p in a["paragraphs"])


def load_docs() -> dict[str, tuple[str, list[str]]]:
    return {p.name: read_doc(p) for p in DOCS.glob("*.md")}


def load_dev_docs() -> set[str]:
    return set(DEV_DOCS_FILE.read_text().split()) if DEV_DOCS_FILE.exists() else set()


def answer_spans(qa: dict) -> list[tuple[int, int]]:
    """(start, end) offsets of a SQuAD qa's answers in its context."""
    return [(a["answer_start"], a["answer_start"] + len(a["text"])) for a in qa["answers"]]


def build() -> None:
    dev_docs = load_dev_docs()
    docs = load_docs()
    sides: dict[str, dict] = {side: defaultdict(list) for side in ("train", "dev", *HELD_APART)}
    seen: set[str] = set()
    for rec in load_records() + [rec for folder in HELD_APART for rec in load_records(folder)]:
        where = rec["_where"]
        doc, title, para, context, qa = squad_record(rec, docs)
        if rec["id"] in seen:
            sys.exit(f"{where}: duplicate id {rec['id']!r}")
        seen.add(rec["id"])
        held = rec["_folder"] in HELD_APART
        if held and doc in dev_docs:
            sys.exit(f"{where}: {rec['_folder']} questions are about train documents; {doc} is a dev "
                     "document")  # fmt: skip
        side = rec["_folder"] if held else "dev" if doc in dev_docs else "train"
        sides[side][(doc, title, para, context)].append(qa)
    for side, groups in sides.items():
        out = HERE / f"{side}.json"
        written = write_squad(groups, out)
        print(f"{side}: {len({doc for doc, *_ in groups})} documents, {written} questions -> {out}")


def untaught(folder: str, out: Path) -> None:
    """The questions of ``folder`` (written after the held-apart sets, e.g. ``later``), less those whose
    answer overlaps the answer of a held-apart question in the same paragraph text: a reader trained on them
    is still tested (``test``) and calibrated (``calib``) on facts it was not taught."""
    dev_docs = load_dev_docs()
    docs = load_docs()
    # By paragraph text, not (doc, para): four documents are copies of "Causes of Diabetes".
    held: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for rec in [rec for folder in HELD_APART for rec in load_records(folder)]:
        _, _, _, context, qa = squad_record(rec, docs)
        held[context] += answer_spans(qa)
    groups: dict[tuple[str, str, int, str], list] = defaultdict(list)
    overlapping = 0
    seen: set[str] = set()
    for rec in load_records(folder):
        doc, title, para, context, qa = squad_record(rec, docs)
        if doc in dev_docs:
            sys.exit(f"{rec['_where']}: {doc} is a dev document; {folder}/ is about train documents")
        if rec["id"] in seen:
            sys.exit(f"{rec['_where']}: duplicate id {rec['id']!r}")
        seen.add(rec["id"])
        if any(s < h_end and h_start < e for s, e in answer_spans(qa) for h_start, h_end in held[context]):
            overlapping += 1
            continue
        groups[(doc, title, para, context)].append(qa)
    written = write_squad(groups, out)
    print(f"{folder}: {written} questions -> {out} ({overlapping} left out: a held-apart question's answer)")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "build"
    if command == "untaught":
        if len(sys.argv) != 4:
            sys.exit("usage: build.py untaught FOLDER OUT.json")
        untaught(sys.argv[2], Path(sys.argv[3]))
    elif command in ("paragraphs", "build"):
        {"paragraphs": dump_paragraphs, "build": build}[command]()
    else:
        sys.exit(f"unknown command {command!r}: paragraphs, build or untaught")

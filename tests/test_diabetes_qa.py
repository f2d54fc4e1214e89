"""The annotated diabetes question sets: the test questions are held apart from what trains the reader."""

from __future__ import annotations

import json
from pathlib import Path

QA = Path(__file__).resolve().parent.parent / "data" / "diabetes-qa"


def questions(name: str) -> dict[str, tuple[str, str]]:
    """id -> (document, question) of one built set."""
    data = json.loads((QA / name).read_text(encoding="utf-8"))["data"]
    return {qa["id"]: (a["doc"], qa["question"]) for a in data for p in a["paragraphs"] for qa in p["qas"]}


def test_member_test_questions_are_about_train_documents_and_never_trained_on() -> None:
    train, dev, test = questions("train.json"), questions("dev.json"), questions("test.json")
    assert len(test) >= 200
    assert not set(test) & (set(train) | set(dev))
    trained_on = {q.lower() for _, q in train.values()}
    assert not [q for _, q in test.values() if q.lower() in trained_on]
    dev_docs = set((QA / "dev_docs.txt").read_text(encoding="utf-8").split())
    assert not {doc for doc, _ in test.values()} & dev_docs  # dev.json covers the unseen documents
    assert {doc for doc, _ in test.values()} <= {doc for doc, _ in train.values()}


def test_the_built_sets_are_what_the_source_records_give() -> None:
    records = [
        json.loads(line)
        for folder in ("src", "test")
        for path in sorted((QA / folder).glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    built = {**questions("train.json"), **questions("dev.json"), **questions("test.json")}
    assert {r["id"] for r in records} == set(built)  # run `python data/diabetes-qa/build.py build`

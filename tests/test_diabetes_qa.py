"""The annotated diabetes question sets: the test and calibration questions are held apart from what trains
the reader, and from each other."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

QA = Path(__file__).resolve().parent.parent / "data" / "diabetes-qa"


def questions(name: str) -> dict[str, tuple[str, str]]:
    """id -> (document, question) of one built set."""
    data = json.loads((QA / name).read_text(encoding="utf-8"))["data"]
    return {qa["id"]: (a["doc"], qa["question"]) for a in data for p in a["paragraphs"] for qa in p["qas"]}


@pytest.mark.parametrize(("name", "at_least"), [("test.json", 200), ("calib.json", 300)])
def test_held_apart_questions_are_about_train_documents_and_never_trained_on(
    name: str, at_least: int
) -> None:
    train, dev, held = questions("train.json"), questions("dev.json"), questions(name)
    assert len(held) >= at_least
    assert not set(held) & (set(train) | set(dev))
    trained_on = {q.lower() for _, q in train.values()}
    assert not [q for _, q in held.values() if q.lower() in trained_on]
    dev_docs = set((QA / "dev_docs.txt").read_text(encoding="utf-8").split())
    assert not {doc for doc, _ in held.values()} & dev_docs  # dev.json covers the unseen documents
    assert {doc for doc, _ in held.values()} <= {doc for doc, _ in train.values()}


def test_the_calibration_never_sees_a_test_question() -> None:
    test, calib = questions("test.json"), questions("calib.json")
    assert not set(test) & set(calib)
    assert not {q.lower() for _, q in test.values()} & {q.lower() for _, q in calib.values()}


def test_the_built_sets_are_what_the_source_records_give() -> None:
    records = [
        json.loads(line)
        for folder in ("src", "test", "calib")
        for path in sorted((QA / folder).glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    built = {
        **questions("train.json"), **questions("dev.json"), **questions("test.json"),
        **questions("calib.json"),
    }  # fmt: skip
    assert {r["id"] for r in records} == set(built)  # run `python data/diabetes-qa/build.py build`


def _build_module():  # noqa: ANN202 - the data folder's build script, loaded as a module
    spec = importlib.util.spec_from_file_location("diabetes_qa_build", QA / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _untaught(folder: str, tmp_path: Path) -> list[dict]:
    out = tmp_path / f"{folder}.json"
    _build_module().untaught(folder, out)
    return json.loads(out.read_text(encoding="utf-8"))["data"]


@pytest.mark.parametrize(("folder", "at_least"), [("later", 500), ("later2", 800)])
def test_later_questions_are_trained_on_without_the_held_apart_facts(
    folder: str, at_least: int, tmp_path: Path
) -> None:
    """Stages 6 and 7 train on ``later/`` and ``later2/`` as ``build.py untaught`` gives them: no test or
    calibration question, nor its answer in the same paragraph, reaches training."""
    later = _untaught(folder, tmp_path)
    taught = {qa["id"]: qa for a in later for p in a["paragraphs"] for qa in p["qas"]}
    assert len(taught) >= at_least
    built = {**questions("train.json"), **questions("dev.json"), **questions("test.json"),
             **questions("calib.json")}  # fmt: skip
    assert not set(taught) & set(built)
    held_texts = {q.lower() for _, q in {**questions("test.json"), **questions("calib.json")}.values()}
    assert not [qa for qa in taught.values() if qa["question"].lower() in held_texts]
    held_spans = {
        (p["context"], a["answer_start"], a["answer_start"] + len(a["text"]))
        for name in ("test.json", "calib.json")
        for doc in json.loads((QA / name).read_text(encoding="utf-8"))["data"]
        for p in doc["paragraphs"]
        for qa in p["qas"]
        for a in qa["answers"]
    }  # fmt: skip
    dev_docs = (QA / "dev_docs.txt").read_text(encoding="utf-8").split()
    for doc in later:
        assert doc["doc"] not in dev_docs
        for p in doc["paragraphs"]:
            for qa in p["qas"]:
                for a in qa["answers"]:
                    start, end = a["answer_start"], a["answer_start"] + len(a["text"])
                    assert not [s for c, s, e in held_spans if c == p["context"] and s < end and start < e]


def test_each_later_batch_asks_its_own_questions(tmp_path: Path) -> None:
    """Stage 7 continues from stage 6: a batch-9 question (``later2/``) is no batch-8 one again."""
    batches = [
        {qa["id"]: qa["question"].lower() for a in _untaught(folder, tmp_path)
         for p in a["paragraphs"] for qa in p["qas"]}
        for folder in ("later", "later2")
    ]  # fmt: skip
    assert not set(batches[0]) & set(batches[1])
    assert not set(batches[0].values()) & set(batches[1].values())

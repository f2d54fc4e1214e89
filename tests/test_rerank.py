"""scripts/rerank.py: the pairs it trains on, its loss, its features, and a run on a tiny model."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from retrieval.passages import Passage, ScoredPassage
from tests.finetune_fixtures import make_model_dir, write_squad_file
from tests.script_modules import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("rerank")


def _passage(text: str, doc_id: str, title: str) -> Passage:
    return Passage(f"id-{text[:8]}", text, doc_id, title, None, 0, len(text))


class FixedIndex:
    """Answers every search with the same passages, best first."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def search(self, query: str, top_k: int = 5) -> list[ScoredPassage]:
        return [ScoredPassage(p, 1.0 / (1 + i)) for i, p in enumerate(self.passages[:top_k])]


def test_pairs_take_only_passages_that_may_stand_as_no_answer(script: ModuleType, tmp_path: Path) -> None:
    train = write_squad_file(tmp_path)
    (tmp_path / "dev_docs.txt").write_text("dev.md\n")
    index = FixedIndex([
        _passage("Insulin is a hormone made by the pancreas.", "other.md", "Other"),  # holds answers
        _passage("A dev page about something else entirely.", "dev.md", "Dev"),  # a dev document
        _passage("Feet and eyes need care; see a doctor.", "care.md", "Care"),  # q3-q5's own document
        _passage("Exercise helps many people feel better.", "move.md", "Move"),
    ])  # fmt: skip
    pairs = {p.question: p for p in script.question_pairs(index, train, tmp_path / "dev_docs.txt")}
    assert len(pairs) == 5
    what_is = pairs["What is insulin?"]
    assert what_is.labels == (1, 0, 0) and "a hormone" in what_is.passages[0]
    assert what_is.passages[1:] == (
        "Feet and eyes need care; see a doctor.", "Exercise helps many people feel better."
    )  # fmt: skip
    feet = pairs["How often should feet be checked?"]
    assert feet.passages[1:] == ("Insulin is a hormone made by the pancreas.",
                                 "Exercise helps many people feel better.")  # fmt: skip
    for p in pairs.values():
        assert not any("dev page" in text for text in p.passages)
        assert len(p.passages) == len(p.labels) and sum(p.labels) == 1


def test_an_unanswerable_question_has_no_relevant_passage(script: ModuleType, tmp_path: Path) -> None:
    train = write_squad_file(tmp_path, version="2.0")
    document = json.loads(train.read_text())
    document["data"][0]["paragraphs"][0]["qas"].append(
        {"id": "u1", "question": "Can insulin be swallowed?", "answers": [], "is_impossible": True}
    )
    train.write_text(json.dumps(document))
    (tmp_path / "dev_docs.txt").write_text("dev.md\n")
    index = FixedIndex(
        [_passage("A dev page.", "dev.md", "Dev"), _passage("Feet need care.", "care.md", "Care")]
    )
    pairs = {p.question: p for p in script.question_pairs(index, train, tmp_path / "dev_docs.txt")}
    assert pairs["Can insulin be swallowed?"].passages == ("Feet need care.",)
    assert pairs["Can insulin be swallowed?"].labels == (0,)


def test_the_loss_ranks_within_a_question_and_scores_every_pair(script: ModuleType) -> None:
    import torch

    labels = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    sizes = [3, 2]  # an answerable question (its relevant passage first), then an unanswerable one
    good = torch.tensor([8.0, -8.0, -8.0, -8.0, -8.0])
    bad = torch.tensor([-8.0, 8.0, -8.0, -8.0, -8.0])  # a wrong passage first
    assert script.rerank_loss(good, labels, sizes).item() < 0.01
    assert script.rerank_loss(bad, labels, sizes).item() > 5
    # An unanswerable question alone: only the per-pair half, which punishes any confident passage.
    lone = torch.tensor([0.0, 0.0])
    assert script.rerank_loss(torch.tensor([-8.0, -8.0]), lone, [2]).item() < 0.01
    assert script.rerank_loss(torch.tensor([8.0, -8.0]), lone, [2]).item() > 3


def test_features_are_the_passage_score_and_its_lead(script: ModuleType) -> None:
    scores = np.array([0.5, 2.0, -1.0])
    assert script.rerank_features(1, scores) == {"rerank": 2.0, "rerank_gap": 1.5}
    assert script.rerank_features(None, scores) == {"rerank": 0.0, "rerank_gap": 0.0}
    assert script.rerank_features(1, np.array([0.0, 3.0]))["rerank_gap"] == 3.0


def test_train_writes_an_fp16_reranker_that_scores(script: ModuleType, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    base = make_model_dir(tmp_path / "base")
    pairs = [
        script.Pairs("What is insulin?", ("Insulin is a hormone.", "Feet need care."), (1, 0)),
        script.Pairs("What should be checked?", ("Feet need care.",), (0,)),
        script.Pairs("What makes insulin?", ("The pancreas makes insulin.", "Exercise helps."), (1, 0)),
    ]
    (tmp_path / "pairs.pkl").write_bytes(pickle.dumps(pairs))
    out = tmp_path / "model"
    argv = ["train", "--pairs", str(tmp_path / "pairs.pkl"), "--base", str(base), "--out", str(out)]
    script.main([*argv, "--questions-per-batch", "2", "--threads", "1"])
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.dtype == torch.float16 and model.config.num_labels == 1
    reranker = script.load_reranker(out, threads=1)
    scores = script.score_passages(reranker, "What is insulin?", ["Insulin is a hormone.", "Feet need care."])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model-")]  # no temp folder left
    with pytest.raises(SystemExit, match="exists"):
        script.main(argv)
    with pytest.raises(SystemExit, match="no such file"):
        script.main(["train", "--pairs", str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "x")])

"""scripts/shared_norm.py: the group loss, the SQuAD groups, and a run on a tiny model."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import ModuleType

import pytest

from tests.finetune_fixtures import make_model_dir, write_squad_file
from tests.script_modules import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("shared_norm")


def test_the_group_loss_is_one_softmax_over_all_passages(script: ModuleType) -> None:
    import torch

    # Two windows of one question: the gold start is position 3 of window 0; window 1 has no answer.
    positions = torch.tensor([3, 0])
    group_of = torch.tensor([0, 0])
    logits = torch.zeros((2, 6))
    logits[0, 3] = 10.0
    low = script.group_loss(logits, positions, group_of).item()
    # A strong span in the other passage leaves window 0's own softmax as it was, but not the group's.
    logits[1, 4] = 10.0
    high = script.group_loss(logits, positions, group_of).item()
    per_window = torch.nn.functional.cross_entropy(logits[:1], positions[:1]).item()
    assert low < 0.01 and per_window < 0.01
    assert high == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=0.01)


def test_a_group_without_an_answer_is_right_on_any_passages_no_answer(script: ModuleType) -> None:
    import torch

    logits = torch.zeros((2, 6))
    logits[1, 0] = 10.0  # the second passage's CLS: "no answer" from one passage is enough
    loss = script.group_loss(logits, torch.tensor([0, 0]), torch.tensor([5, 5])).item()
    assert loss < 0.01
    logits[0, 2] = 10.0  # a span as strong as that "no answer" halves its probability
    assert script.group_loss(logits, torch.tensor([0, 0]), torch.tensor([5, 5])).item() > 0.6


def test_groups_are_averaged_one_by_one(script: ModuleType) -> None:
    import torch

    logits = torch.zeros((3, 4))
    logits[0, 2] = logits[2, 0] = 20.0
    # Group 0 (windows 0-1) is right at position 2; group 1 (window 2) is right at its CLS.
    loss = script.group_loss(logits, torch.tensor([2, 0, 0]), torch.tensor([0, 0, 1])).item()
    assert loss < 0.01


def test_squad_groups_pair_a_question_with_other_paragraphs_of_its_article(
    script: ModuleType, tmp_path: Path
) -> None:
    from finetune.squad import load_squad

    path = write_squad_file(tmp_path)
    examples = {e.id: e for e in load_squad([path]).examples}
    groups = script.squad_groups(path, 5, seed=0)
    assert len(groups) == 5
    for group in groups:
        golds = [a.text.lower() for e in group for a in e.answers]
        assert sum(bool(e.answers) for e in group) <= 1
        assert len({e.question for e in group}) == 1  # one question per group
        for negative in (e for e in group if not e.answers):
            original = examples[negative.id.split("-sn")[0]]
            assert not any(a.text.lower() in negative.context.lower() for a in original.answers)
        if golds:
            assert group[0].answers  # the answer's passage first
    assert sum(not any(e.answers for e in g) for g in groups) == 1  # one in five: no passage answers


def test_squad_groups_refuse_more_questions_than_there_are(script: ModuleType, tmp_path: Path) -> None:
    path = write_squad_file(tmp_path)
    with pytest.raises(SystemExit, match="5 answerable questions, 9 asked for"):
        script.squad_groups(path, 9, seed=0)


def test_train_writes_an_fp16_reader_that_loads(script: ModuleType, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    from finetune.reader_config import ReaderConfig

    base = make_model_dir(tmp_path / "base")
    ReaderConfig(max_seq_length=128, doc_stride=32).save(base)
    groups = script.squad_groups(write_squad_file(tmp_path), 4, seed=0)
    (tmp_path / "groups.pkl").write_bytes(pickle.dumps(groups))
    out = tmp_path / "reader"
    argv = ["train", "--groups", str(tmp_path / "groups.pkl"), "--base", str(base), "--out", str(out)]
    script.main([*argv, "--groups-per-batch", "2", "--threads", "1"])
    model = AutoModelForQuestionAnswering.from_pretrained(out)
    assert model.dtype == torch.float16
    assert json.loads((out / "reader_config.json").read_text())["max_seq_length"] == 128
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".reader-")]  # no temp folder left
    with pytest.raises(SystemExit, match="exists"):
        script.main(argv)

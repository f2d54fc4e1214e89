"""Really fine-tune the bundled MiniLM for a few steps on 16 questions, then evaluate it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from finetune.commands import evaluate_model
from finetune.config import TrainConfig
from finetune.train import train
from tests.finetune_fixtures import CONTEXT_A1C, CONTEXT_FOOT, CONTEXT_INSULIN, write_json

QUESTIONS = {
    CONTEXT_INSULIN: [
        ("What is insulin?", "a hormone"),
        ("What makes insulin?", "the pancreas"),
        ("Which organ makes insulin?", "pancreas"),
        ("What does insulin let enter the cells?", "glucose"),
        ("What does insulin let glucose enter?", "the cells of the body"),
        ("What kind of substance is insulin?", "hormone"),
    ],
    CONTEXT_A1C: [
        ("What does the A1C test measure?", "average blood sugar"),
        ("Over what period does the A1C test measure blood sugar?", "the past three months"),
        ("How many months does the A1C test cover?", "three"),
        ("Which test measures average blood sugar?", "The A1C test"),
        ("What does A1C average?", "blood sugar"),
    ],
    CONTEXT_FOOT: [
        ("How often should people with diabetes check their feet?", "every day"),
        ("What should people with diabetes check every day?", "their feet"),
        ("Who should check their feet every day?", "People with diabetes"),
        ("What should feet be checked for?", "cuts, blisters and swelling"),
        ("Besides cuts and swelling, what should feet be checked for?", "blisters"),
    ],
}


def _document() -> dict:
    paragraphs = [
        {
            "context": context,
            "qas": [
                {
                    "id": f"p{p}q{q}",
                    "question": question,
                    "answers": [{"text": answer, "answer_start": context.index(answer)}],
                }
                for q, (question, answer) in enumerate(pairs)
            ],
        }  # fmt: skip
        for p, (context, pairs) in enumerate(QUESTIONS.items())
    ]
    return {"version": "1.1", "data": [{"title": "Diabetes basics", "paragraphs": paragraphs}]}


@pytest.fixture
def one_cpu_thread() -> Iterator[None]:
    """Train on one thread: on a CPU shared with other jobs, two threads wait on each other at every
    barrier and a step can take 10x longer (measured on our shared 2-core machine: 0.5 s vs 7 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.integration
def test_fine_tune_minilm_for_a_few_steps_and_evaluate(tmp_path: Path, one_cpu_thread: None) -> None:
    data = write_json(tmp_path / "train.json", _document())
    config = TrainConfig(
        data=(data,), dev=data, output=tmp_path / "model", base_model="minilm", epochs=2, batch_size=8,
        learning_rate=1e-4, warmup_ratio=0.0, max_seq_length=128, doc_stride=64, dataloader_workers=0, seed=0,
    )  # fmt: skip
    result = train(config)
    assert result.train_examples == 16 and result.train_features == 16
    metrics = json.loads((config.output / "metrics.json").read_text())
    losses = [h["train_loss"] for h in metrics["history"]]
    # it learns: the QA head starts random (loss about ln 128 = 4.85), and the loss falls
    assert len(losses) == 2 and losses[-1] < losses[0]
    # no window options: evaluate reads the model's reader_config.json (128 / 64, as trained)
    scores = evaluate_model(config.output, data, device="cpu", backend="torch")  # as training evaluates
    assert scores.n == 16
    assert scores.f1 == pytest.approx(result.best_dev["f1"], abs=1.0)  # evaluate == the in-training eval
    assert scores.f1 > 0.0


@pytest.mark.integration
def test_the_same_train_command_runs_under_torchrun(tmp_path: Path) -> None:
    """README's scale-out claim: `torchrun --nproc_per_node N -m finetune.cli train ...` unchanged.

    Two processes on the CPU (gloo) stand in for two GPUs: both train, only rank 0 writes the output
    and prints the one JSON document.
    """
    data = write_json(tmp_path / "train.json", _document())
    output = tmp_path / "model"
    command = [
        str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "-m", "finetune.cli",
        "train", "--data", str(data), "--dev", str(data), "--output", str(output), "--epochs", "1",
        "--batch-size", "4", "--max-seq-length", "128", "--doc-stride", "64", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)  # exactly one JSON document: rank 1 printed nothing
    assert summary["train_examples"] == 16 and summary["output"] == str(output)
    assert (output / "model.safetensors").is_file() and (output / "metrics.json").is_file()

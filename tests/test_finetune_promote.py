"""Promotion: a retrained reader is installed only if it is not worse, atomically, with a rollback.

The models are the tiny random BERT of ``finetune_fixtures``: "good" is trained on the fixture questions
until it answers them (dev F1 well above the untrained model's), "base" is the untrained one. The
refusal is real: a worse candidate is scored worse on the same dev set by ``finetune evaluate``'s path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finetune import promote
from finetune.cli import app
from finetune.config import TrainConfig
from finetune.promote import (
    ModelScores,
    PromotionError,
    compare,
    install_model,
    previous_dir,
    promote_if_better,
    rollback_model,
)
from finetune.reader_config import ReaderConfig
from finetune.train import train
from tests.finetune_fixtures import make_model_dir, squad_document, write_json

runner = CliRunner()
WINDOWS = {"max_seq_length": 48, "doc_stride": 16}
TINY_TRAIN = ["--batch-size", "4", "--max-seq-length", "48", "--doc-stride", "16", "--precision", "fp32",
              "--eval-batch-size", "8", "--dataloader-workers", "0", "--seed", "0"]  # fmt: skip


def weights(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained tiny model, one trained on the fixture questions, and those questions as dev set."""
    root = tmp_path_factory.mktemp("promote")
    base = make_model_dir(root / "base")
    ReaderConfig(**WINDOWS).save(base)
    dev = write_json(root / "dev.json", squad_document())
    config = TrainConfig(
        data=(dev,), dev=dev, output=root / "good", base_model=str(base), epochs=15, batch_size=4,
        learning_rate=3e-3, precision="fp32", eval_batch_size=8, dataloader_workers=0, seed=0,
        early_stopping_patience=0, warmup_ratio=0.0, **WINDOWS,
    )  # fmt: skip
    train(config)
    return {"base": base, "good": root / "good", "dev": dev}


def scores(f1: float, no_answer: float | None) -> ModelScores:
    return ModelScores("m", f1, f1, no_answer, 10)


def test_compare_refuses_lower_f1_or_lower_no_answer_accuracy() -> None:
    assert compare(scores(70, 80), scores(70, 80))[0] is True
    assert compare(scores(71, None), scores(70, None))[0] is True
    better, reason = compare(scores(69.9, 90), scores(70, 80))
    assert better is False and "F1 69.90" in reason
    better, reason = compare(scores(75, 70), scores(70, 80))
    assert better is False and "unanswerable" in reason


def fake_model(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "which").write_text(name)
    return folder


@pytest.mark.parametrize("atomic_exchange", [True, False])
def test_install_keeps_the_previous_model_and_rollback_swaps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, atomic_exchange: bool
) -> None:
    if not atomic_exchange:  # the two-rename fallback of systems without renameat2
        monkeypatch.setattr(promote, "exchange_paths", lambda a, b: False)
    target = tmp_path / "model"
    assert install_model(fake_model(tmp_path / "a", "a"), target) is None  # nothing served before
    assert (target / "which").read_text() == "a"
    kept = install_model(fake_model(tmp_path / "b", "b"), target)
    assert kept == previous_dir(target) and (kept / "which").read_text() == "a"
    assert (target / "which").read_text() == "b"
    rollback_model(target)
    assert (target / "which").read_text() == "a" and (previous_dir(target) / "which").read_text() == "b"
    rollback_model(target)  # a second rollback undoes the first
    assert (target / "which").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "model", "model.previous"]


def test_install_refuses_a_folder_that_is_not_a_model_and_rollback_needs_a_previous(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(PromotionError, match="holds no model"):
        install_model(fake_model(tmp_path / "a", "a"), target)
    assert (target / "notes.txt").read_text() == "mine"
    with pytest.raises(PromotionError, match="no previous model"):
        rollback_model(tmp_path / "other")


def test_a_worse_candidate_is_refused_and_the_served_model_is_untouched(tiny: dict, tmp_path: Path) -> None:
    target = tmp_path / "served"
    shutil.copytree(tiny["good"], target)
    before = weights(target)
    report = promote_if_better(tiny["base"], target, target, tiny["dev"], device="cpu")
    assert report.promoted is False and "below the served model" in report.reason
    assert report.candidate.f1 < report.served.f1
    assert weights(target) == before and not previous_dir(target).exists()


def test_a_better_candidate_is_installed_with_the_old_one_kept(tiny: dict, tmp_path: Path) -> None:
    target = tmp_path / "served"
    shutil.copytree(tiny["base"], target)
    report = promote_if_better(tiny["good"], target, target, tiny["dev"], device="cpu")
    assert report.promoted is True and report.candidate.f1 > report.served.f1
    assert weights(target) == weights(tiny["good"]) and weights(previous_dir(target)) == weights(tiny["base"])
    assert report.installed == str(target) and report.previous == str(previous_dir(target))


def test_train_promote_if_better_refuses_a_worse_retrained_model(tiny: dict, tmp_path: Path) -> None:
    """The CLI: one epoch at a tiny learning rate from the untrained model cannot beat the trained one."""
    target = tmp_path / "served"
    shutil.copytree(tiny["good"], target)
    before = weights(target)
    progress = tmp_path / "progress.json"
    result = runner.invoke(app, [
        "train", "--data", str(tiny["dev"]), "--dev", str(tiny["dev"]), "--base-model", str(tiny["base"]),
        "--output", str(tmp_path / "candidate"), "--epochs", "1", "--learning-rate", "1e-5",
        "--promote-if-better", str(target), "--progress-file", str(progress), "--json", *TINY_TRAIN,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout.strip().splitlines()[-1])
    promotion = document["promotion"]
    assert promotion["promoted"] is False and promotion["candidate"]["f1"] < promotion["served"]["f1"]
    assert weights(target) == before and not previous_dir(target).exists()
    assert json.loads(progress.read_text())["stage"] == "evaluating the served model"


def test_promote_if_better_needs_a_dev_set(tiny: dict, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tiny["dev"]), "--output", str(tmp_path / "c"),
                                 "--promote-if-better", str(tmp_path / "served")])  # fmt: skip
    assert result.exit_code == 1 and "--promote-if-better needs --dev" in result.output


def test_exchange_paths_swaps_two_folders(tmp_path: Path) -> None:
    a, b = fake_model(tmp_path / "a", "a"), fake_model(tmp_path / "b", "b")
    if not promote.exchange_paths(a, b):
        pytest.skip("no renameat2 here")
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"

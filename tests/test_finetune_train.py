"""``train()`` on a tiny random BERT: output contents, atomic output, resume, data splits, history."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from finetune import train as train_module
from finetune.config import TrainConfig
from finetune.reader import Reader
from finetune.reader_config import ReaderConfig
from finetune.train import TrainingError, epoch_history, load_splits, train
from tests.finetune_fixtures import make_model_dir, squad_document, write_json


def _renamed(suffix: str, copies: int = 1) -> dict:
    """The fixture document with its question ids made unique (``copies`` times each question)."""
    document = squad_document()
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [
                {**qa, "id": f"{qa['id']}-{suffix}{i}"} for i in range(copies) for qa in paragraph["qas"]
            ]
    return document


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("base") / "tiny")


def _config(tmp_path: Path, base_model: Path, **overrides) -> TrainConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    train_file = write_json(tmp_path / "train.json", _renamed("t", copies=3))
    dev_file = write_json(tmp_path / "dev.json", _renamed("d"))
    settings = dict(
        data=(train_file,), dev=dev_file, output=tmp_path / "out" / "model", base_model=str(base_model),
        epochs=2, batch_size=4, learning_rate=1e-3, max_seq_length=48, doc_stride=16, precision="fp32",
        eval_batch_size=8, dataloader_workers=0, seed=0,
    )  # fmt: skip
    settings.update(overrides)
    return TrainConfig(**settings)


def _leftovers(folder: Path) -> list[str]:
    """Temp dirs a failed or finished run may have left beside the output."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_train_writes_a_complete_model_directory(tmp_path: Path, base_model: Path) -> None:
    config = _config(tmp_path, base_model)
    result = train(config)
    out = config.output
    assert result.output == str(out) and result.train_examples == 15 and result.train_features >= 15
    assert result.epochs == 2.0 and set(result.best_dev) == {"exact_match", "f1"}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md"):
        assert (out / name).is_file(), name
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1.0, 2.0]
    assert all(h["train_loss"] > 0 for h in metrics["history"])
    assert metrics["best_dev"]["f1"] == max(h["f1"] for h in metrics["history"])
    assert metrics["dev_examples"] == 5 and metrics["hardware"] and metrics["precision"] == "fp32"
    assert metrics["settings"]["max_seq_length"] == 48
    # the reader serves the model with the windows it was trained with, not the defaults
    assert ReaderConfig.load(out) == config.reader_config() and ReaderConfig.load(out).max_seq_length == 48
    assert Reader(out, device="cpu").windows == config.reader_config().windows
    card = (out / "README.md").read_text()
    assert str(base_model) in card and "train.json" in card and "F1" in card
    assert not config.work_dir.exists()  # checkpoints removed after success
    assert _leftovers(out.parent) == []


def test_float16_output_is_half_the_size_and_loads(tmp_path: Path, base_model: Path) -> None:
    from finetune.reader import Reader

    full = _config(tmp_path / "a", base_model, epochs=1)
    half = _config(tmp_path / "b", base_model, epochs=1, save_dtype="float16")
    train(full)
    train(half)
    sizes = [(c.output / "model.safetensors").stat().st_size for c in (full, half)]
    assert sizes[1] < 0.6 * sizes[0]
    reader = Reader(half.output, device="cpu", precision="fp32")
    reader.warm_up()
    assert reader.read("What is insulin?", [squad_document()["data"][0]["paragraphs"][0]["context"]])[0].best


def test_a_failed_run_leaves_no_output(
    tmp_path: Path, base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_curve(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(train_module, "write_training_curve", broken_curve)
    config = _config(tmp_path, base_model, epochs=1)
    with pytest.raises(RuntimeError, match="disk full"):
        train(config)
    assert not config.output.exists()
    assert _leftovers(config.output.parent) == []


def test_an_existing_output_is_kept_unless_overwrite(tmp_path: Path, base_model: Path) -> None:
    config = _config(tmp_path, base_model, epochs=1)
    config.output.mkdir(parents=True)
    (config.output / "keep.txt").write_text("old model")
    with pytest.raises(TrainingError, match="already exists; choose another --output or pass --overwrite"):
        train(config)
    assert (config.output / "keep.txt").read_text() == "old model"
    train(dataclasses.replace(config, overwrite=True))
    assert not (config.output / "keep.txt").exists() and (config.output / "model.safetensors").is_file()
    assert _leftovers(config.output.parent) == []


def test_leftovers_of_interrupted_runs_are_removed(tmp_path: Path, base_model: Path) -> None:
    config = _config(tmp_path, base_model, epochs=1, overwrite=True)
    parent = config.output.parent
    parent.mkdir(parents=True)
    for name in (".model.old", ".model.k2x_9abq"):  # a swapped-out output; a killed run's temp folder
        (parent / name).mkdir()
        (parent / name / "model.safetensors").write_bytes(b"87 MB of weights")
    (parent / ".model.work-notes").write_text("not ours to delete")
    config.output.write_text("an output that is a file, replaced by --overwrite")
    train(config)
    assert (config.output / "model.safetensors").is_file()
    assert _leftovers(parent) == [".model.work-notes"]


def test_resume_continues_from_the_last_checkpoint(
    tmp_path: Path, base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, base_model, epochs=2)
    real_write = train_module.write_output

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for a kill after the last epoch's checkpoint

    monkeypatch.setattr(train_module, "write_output", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert not config.output.exists()
    checkpoints = sorted(p.name for p in config.work_dir.iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints, "no checkpoint to resume from"

    monkeypatch.setattr(train_module, "write_output", real_write)
    result = train(dataclasses.replace(config, epochs=3, resume=True))
    metrics = json.loads((config.output / "metrics.json").read_text())
    # epochs 1-2 come from the checkpoint's state, only epoch 3 was trained again
    assert [h["epoch"] for h in metrics["history"]] == [1.0, 2.0, 3.0]
    assert result.epochs == 3.0


def test_resume_skips_checkpoints_a_kill_left_half_saved(
    tmp_path: Path, base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, base_model, epochs=2)
    real_write = train_module.write_output
    monkeypatch.setattr(train_module, "write_output", _raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    last = max(config.work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    steps = int(last.name.split("-")[1])
    # Killed mid-save: one checkpoint has no trainer state yet, a later one has cut weights.
    no_state = shutil.copytree(last, config.work_dir / f"checkpoint-{steps + 1}")
    (no_state / "trainer_state.json").unlink()
    cut = shutil.copytree(last, config.work_dir / f"checkpoint-{steps + 2}")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])

    monkeypatch.setattr(train_module, "write_output", real_write)
    result = train(dataclasses.replace(config, epochs=3, resume=True))
    metrics = json.loads((config.output / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1.0, 2.0, 3.0] and result.epochs == 3.0


def _raise_keyboard_interrupt(*args, **kwargs):
    raise KeyboardInterrupt  # stands in for a kill after the last epoch's checkpoint


def test_load_splits_samples_and_holds_out_contexts(tmp_path: Path, base_model: Path) -> None:
    config = _config(tmp_path, base_model, dev=None, dev_fraction=0.34, max_train_examples=4)
    _, train_examples, dev_examples = load_splits(config)
    assert len(train_examples) == 4
    assert not {e.context for e in train_examples} & {e.context for e in dev_examples}
    with pytest.raises(TrainingError, match="need training and dev questions"):
        load_splits(dataclasses.replace(config, dev=write_json(tmp_path / "empty.json", {"data": []})))


def test_epoch_history_groups_losses_by_epoch() -> None:
    log = [
        {"loss": 4.0, "epoch": 0.5},
        {"loss": 2.0, "epoch": 1.0},
        {"eval_exact_match": 10.0, "eval_f1": 20.0, "epoch": 1.0},
        {"loss": 1.0, "epoch": 2.0},
        {"eval_exact_match": 30.0, "eval_f1": 40.0, "epoch": 2.0},
        {"train_runtime": 3.0, "epoch": 2.0},
    ]
    assert epoch_history(log) == [
        {"epoch": 1.0, "train_loss": 3.0, "exact_match": 10.0, "f1": 20.0},
        {"epoch": 2.0, "train_loss": 1.0, "exact_match": 30.0, "f1": 40.0},
    ]


def test_training_arguments_follow_the_installed_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass
    class OlderArguments:  # transformers releases with group_by_length and warmup_ratio
        group_by_length: bool = False
        warmup_ratio: float = 0.0

    monkeypatch.setattr(train_module, "TrainingArguments", OlderArguments)
    assert train_module._version_specific_arguments(0.1) == {"group_by_length": True, "warmup_ratio": 0.1}

    @dataclasses.dataclass
    class NewerArguments:
        train_sampling_strategy: str = "random"
        warmup_steps: float = 0

    monkeypatch.setattr(train_module, "TrainingArguments", NewerArguments)
    assert train_module._version_specific_arguments(0.1) == {
        "train_sampling_strategy": "group_by_length",
        "warmup_steps": 0.1,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": ()}, "at least one --data file"),
        ({"precision": "int4"}, "precision must be one of"),
        ({"save_dtype": "bfloat16"}, "save_dtype must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive number"),
        ({"epochs": float("nan")}, "epochs must be a positive number, got nan"),
        ({"epochs": float("inf")}, "epochs must be a positive number, got inf"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive number"),
        ({"weight_decay": float("nan")}, "weight_decay must be a number >= 0"),
        ({"max_train_examples": 0}, "max_train_examples must be at least 1"),
        ({"dev": None, "dev_fraction": 1.0}, "dev_fraction must be between 0 and 1"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
    ],
)
def test_config_refuses_bad_values(tmp_path: Path, overrides: dict, message: str) -> None:
    base = {"data": (tmp_path / "t.json",), "output": tmp_path / "o"}
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**base, **overrides})


def test_work_dir_sits_next_to_the_output(tmp_path: Path) -> None:
    config = TrainConfig(data=(tmp_path / "t.json",), output=tmp_path / "var" / "model")
    assert config.work_dir == tmp_path / "var" / "model.work"


def test_trainer_shows_one_bar_without_per_step_dicts(tmp_path: Path, base_model: Path) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, ProgressCallback  # noqa: PLC0415

    from finetune.evaluation import build_eval_set  # noqa: PLC0415
    from finetune.train import QuietProgressCallback, build_trainer  # noqa: PLC0415

    config = _config(tmp_path, base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForQuestionAnswering.from_pretrained(base_model)
    dev_set = build_eval_set(tokenizer, [], config.reader_config().windows)
    trainer = build_trainer(config, model, tokenizer, [], dev_set)
    kinds = [type(c) for c in trainer.callback_handler.callbacks]
    assert QuietProgressCallback in kinds and ProgressCallback not in kinds

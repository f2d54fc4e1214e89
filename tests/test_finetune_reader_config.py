"""reader_config.json: the window and decoding settings that travel with a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.errors import ReaderConfigError
from finetune.reader_config import READER_CONFIG_FILE, ReaderConfig

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "reader"


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    config = ReaderConfig(max_seq_length=256, doc_stride=64, max_answer_length=20, n_best_size=10)
    path = config.save(tmp_path)
    assert path == tmp_path / READER_CONFIG_FILE
    assert json.loads(path.read_text()) == config.to_json()
    assert ReaderConfig.load(tmp_path) == config
    assert (config.windows.max_seq_length, config.decode.max_answer_length) == (256, 20)


def test_a_directory_without_the_file_reads_with_the_defaults(tmp_path: Path) -> None:
    assert ReaderConfig.load(tmp_path) == ReaderConfig()


def test_missing_keys_take_the_defaults(tmp_path: Path) -> None:
    (tmp_path / READER_CONFIG_FILE).write_text('{"max_seq_length": 256}')
    assert ReaderConfig.load(tmp_path) == ReaderConfig(max_seq_length=256)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"max_seq_length": 384, "max_seq_lenght": 256}', "unknown keys ['max_seq_lenght']"),
        ('{"doc_stride": 500}', "doc_stride must be in"),
        ('{"max_answer_length": "30"}', "max_answer_length must be int"),
        ('{"n_best_size": true}', "n_best_size must be int"),
        ("[384, 128]", "expected a JSON object"),
        ("{", "not JSON"),
    ],
)
def test_bad_files_are_errors_naming_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / READER_CONFIG_FILE).write_text(content)
    with pytest.raises(ReaderConfigError) as error:
        ReaderConfig.load(tmp_path)
    assert str(tmp_path / READER_CONFIG_FILE) in str(error.value) and fragment in str(error.value)


def test_the_shipped_reader_carries_its_training_settings() -> None:
    config = ReaderConfig.load(SHIPPED)
    trained = json.loads((SHIPPED / "metrics.json").read_text())["settings"]
    # Stage 5 trained at length 256 (791 of the 827 bundled passages fit one window).
    assert (config.max_seq_length, config.doc_stride, config.max_answer_length) == (256, 85, 30)
    # null_threshold is tuned after training (bench/tune_null_threshold.py), the rest comes from training.
    window_keys = [key for key in config.to_json() if key != "null_threshold"]
    assert {k: config.to_json()[k] for k in window_keys} == {k: trained[k] for k in window_keys}
    assert config.null_threshold < 0  # the shipped reader declines more readily than at 0


def test_null_threshold_round_trips_and_decides_no_answer(tmp_path: Path) -> None:
    from finetune.postprocess import best_answer  # noqa: PLC0415
    from finetune.types import Reading, Span  # noqa: PLC0415

    ReaderConfig(null_threshold=-1.5).save(tmp_path)
    config = ReaderConfig.load(tmp_path)
    assert config.null_threshold == -1.5
    reading = Reading((Span("insulin", 0, 7, 3.0, 0.9),), no_answer_score=2.0)  # span beats null by 1
    assert best_answer(reading, True, 0.0) == "insulin"
    assert best_answer(reading, True, config.null_threshold) == ""  # needs a margin of 1.5

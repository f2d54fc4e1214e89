"""scripts/experiments.py: the seeded batches and the all-or-nothing output folder and data file."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.script_modules import load_script

experiments = load_script("experiments")


def test_batches_cover_every_item_once_in_a_seeded_order() -> None:
    batches = experiments.seeded_batches(10, 4, seed=13)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == experiments.seeded_batches(10, 4, seed=13)
    assert batches != experiments.seeded_batches(10, 4, seed=14)


def test_the_output_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    experiments.save_whole(tmp_path / "out", lambda folder: (folder / "weights").write_text("w"))
    assert (tmp_path / "out" / "weights").read_text() == "w"

    def half_written(folder: Path) -> None:
        (folder / "weights").write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        experiments.save_whole(tmp_path / "second", half_written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder, no half output


def test_a_data_file_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "pairs.pkl"
    experiments.write_pickle(path, {"questions": [1, 2]})
    assert pickle.loads(path.read_bytes()) == {"questions": [1, 2]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.pkl"]  # no temp file left


def test_a_missing_input_is_named_with_the_script(tmp_path: Path) -> None:
    experiments.require("rerank", tmp_path)
    with pytest.raises(SystemExit, match=r"rerank: .*missing.json: no such file or folder"):
        experiments.require("rerank", tmp_path, tmp_path / "missing.json")

"""scripts/training_loop.py: the seeded batches and the all-or-nothing output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.script_modules import load_script

loop = load_script("training_loop")


def test_batches_cover_every_item_once_in_a_seeded_order() -> None:
    batches = loop.seeded_batches(10, 4, seed=13)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == loop.seeded_batches(10, 4, seed=13)
    assert batches != loop.seeded_batches(10, 4, seed=14)


def test_the_output_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    loop.save_whole(tmp_path / "out", lambda folder: (folder / "weights").write_text("w"))
    assert (tmp_path / "out" / "weights").read_text() == "w"

    def half_written(folder: Path) -> None:
        (folder / "weights").write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        loop.save_whole(tmp_path / "second", half_written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder, no half output

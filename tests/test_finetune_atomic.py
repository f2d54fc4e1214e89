"""finetune's atomic writes: whole files or nothing, normal modes, and the process umask left alone."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest

from finetune import atomic
from finetune.atomic import make_temp_dir, replace_dir, write_json_atomic

_REAL_UMASK = os.umask


@pytest.fixture
def umask_022() -> object:
    """A known umask for the test, restored after (with the real os.umask: the test may patch it)."""
    old = _REAL_UMASK(0o022)
    yield
    _REAL_UMASK(old)


@pytest.fixture
def umask_untouchable(monkeypatch: pytest.MonkeyPatch, umask_022: object) -> None:
    """Fail the test if anything reads or sets the process-wide umask (racy for other threads)."""

    def forbidden(_mask: int) -> int:
        raise AssertionError("os.umask called: it changes the mask of every thread of the process")

    monkeypatch.setattr(os, "umask", forbidden)


@pytest.mark.usefixtures("umask_untouchable")
def test_files_get_normal_modes_without_touching_the_umask(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a" / "out.json", {"x": 1})
    write_json_atomic(tmp_path / "a" / "out.json.gz", [1, 2])
    assert json.loads((tmp_path / "a" / "out.json").read_text()) == {"x": 1}
    assert json.loads(gzip.decompress((tmp_path / "a" / "out.json.gz").read_bytes())) == [1, 2]
    assert stat.S_IMODE((tmp_path / "a" / "out.json").stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out.json", "out.json.gz"]  # no temp left


@pytest.mark.usefixtures("umask_untouchable")
def test_a_temp_dir_gets_a_normal_mode_and_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    tmp = make_temp_dir(target)
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o755 and tmp.parent == tmp_path
    (tmp / "new.txt").write_text("new")
    replace_dir(tmp, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.json"
    path.write_text('"old"')

    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, "new")
    assert path.read_text() == '"old"' and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_no_finetune_module_touches_the_umask() -> None:
    package = Path(atomic.__file__).parent
    assert [p.name for p in package.glob("*.py") if "umask(" in p.read_text()] == []

"""Atomic writes for ``finetune``: the one helper for files and the one for directories.

A file is written to a temp name beside its destination and renamed into place (``os.replace`` is
atomic on POSIX), so a reader sees the old content or the new, never half of it. Temp files and
folders are created with the normal modes (0o666 / 0o777) and the kernel applies the umask: nothing
here reads or sets the process-wide umask, which other threads rely on.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

FILE_MODE = 0o666
DIR_MODE = 0o777


def _temp_name(beside: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name in ``beside``'s folder (random: concurrent writers never collide)."""
    return beside.with_name(f".{beside.name}.{secrets.token_hex(6)}{suffix}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (its folder is created when missing).

    Args:
        path: the destination.
        data: the whole content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, document: Any, *, indent: int | None = None) -> None:
    """Write ``document`` as UTF-8 JSON (gzipped when the name ends in ``.gz``) atomically."""
    text = json.dumps(document, ensure_ascii=False, indent=indent)
    data = (text + "\n" if indent is not None else text).encode("utf-8")
    write_bytes_atomic(path, gzip.compress(data) if Path(path).name.endswith(".gz") else data)


def make_temp_dir(beside: Path) -> Path:
    """A new empty hidden folder next to ``beside``, to fill and then ``replace_dir`` into place."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(beside, suffix="")
    os.mkdir(tmp, DIR_MODE)
    return tmp


def replaced_dir_backup(target: Path) -> Path:
    """Where ``replace_dir`` parks the old ``target`` for a moment while it swaps the new one in."""
    return target.with_name(f".{target.name}.old")


def replace_dir(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``; an existing target is swapped out first and removed after.

    POSIX cannot rename a folder over a non-empty one, so there is a moment where ``target`` is
    missing and its old content sits at ``replaced_dir_backup(target)``.
    """
    if not target.exists():
        os.replace(new, target)
        return
    old = replaced_dir_backup(target)
    remove_path(old)
    os.replace(target, old)
    os.replace(new, target)
    remove_path(old)


def remove_path(path: Path) -> None:
    """Delete a folder tree or a single file (an --overwrite'd output may have been a file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

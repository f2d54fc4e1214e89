"""Index generations on disk: built aside, swapped in atomically, old ones cleaned up.

Layout: ``INDEX`` is a symbolic link to a sibling generation folder ``.INDEX.gen-<time>-<random>``. A
rebuild writes a new generation, then replaces the link with ``os.replace`` (atomic on POSIX): a reader
sees the old index or the new one, never a mix, and a crash or a full disk mid-build leaves the old
link and folder untouched. The generation just replaced is kept (a reader may have resolved the link a
moment ago); older ones are deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.errors import IndexBuildError

logger = logging.getLogger(__name__)

GENERATION = ".gen-"


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index (the CLI and the bot's /reindex may overlap): a concurrent build
    would delete the other's generation when it cleans up."""
    with _open_lock(index_dir) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBuildError(
                f"another build of {index_dir} is running; try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock(index_dir: Path) -> Any:
    """The lock file beside ``index_dir``, its folder created; a parent that is a file, or a place that
    cannot hold files (``/proc``), is bad input with a one-line reason, not a traceback."""
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        return open(index_dir.parent / f".{index_dir.name}.lock", "w")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        if isinstance(error, (FileExistsError, NotADirectoryError)):
            # The error names the folder it tried to make; the culprit is the nearest existing parent.
            blocker = next((p for p in index_dir.parents if p.exists()), index_dir.parent)
            reason = f"{blocker} is a file, not a folder"
        else:
            reason = f"{error.strerror or error}{f' ({error.filename})' if error.filename else ''}"
        raise IndexBuildError(
            f"cannot create the index {index_dir}: {reason}; choose another --index"
        ) from error


def set_aside(index_dir: Path, previous: str, version: str) -> str:
    """Move the replaced generation out of the way of the clean-up of old generations, for good.

    Returns:
        Its new path.
    """
    kept = index_dir.parent / f".{index_dir.name}.kept-v{version.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    (index_dir.parent / previous).rename(kept)
    logger.warning("the replaced index of version %s is kept at %s", version, kept)
    return str(kept)


def write_and_swap(index_dir: Path, write: Callable[[Path], None]) -> str | None:
    """Create a new generation beside ``index_dir``, let ``write`` fill it, and point ``index_dir`` at it.

    Args:
        index_dir: the index path (a link after the first build).
        write: writes the generation's files into the folder it is given (with ``write_synced``).

    Returns:
        The name of the generation it replaced (None when there was none).
    """
    parent = index_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    generation = parent / f".{index_dir.name}{GENERATION}{stamp}-{uuid.uuid4().hex[:8]}"
    generation.mkdir()
    try:
        write(generation)
        previous = _swap_link(index_dir, generation)
    except BaseException:
        shutil.rmtree(generation, ignore_errors=True)
        raise
    _remove_old_generations(index_dir, keep={generation.name, previous})
    return previous


def write_synced(path: Path, data: bytes) -> None:
    """Write and fsync, so the swap never points at data still in the page cache only."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _swap_link(index_dir: Path, generation: Path) -> str | None:
    """Atomically point ``index_dir`` at ``generation``; returns the name of the replaced generation."""
    previous = os.readlink(index_dir) if index_dir.is_symlink() else None
    if index_dir.is_dir() and not index_dir.is_symlink():
        # A plain folder (an empty one, or an index from before links): move it aside first. This is
        # the one moment the path is missing, and it happens once per index.
        moved = index_dir.parent / f".{index_dir.name}{GENERATION}legacy-{uuid.uuid4().hex[:8]}"
        index_dir.rename(moved)
        previous = moved.name
    link = index_dir.parent / f".{index_dir.name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(generation.name, link)  # relative: the parent folder can be moved or mounted elsewhere
    try:
        os.replace(link, index_dir)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
    _sync_dir(index_dir.parent)
    return Path(previous).name if previous else None


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_old_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than the current and the one just replaced (and crash leftovers)."""
    prefix = f".{index_dir.name}{GENERATION}"
    for folder in index_dir.parent.glob(f"{prefix}*"):
        if folder.name not in keep and folder.is_dir() and not folder.is_symlink():
            logger.info("removing old index generation %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    for link in index_dir.parent.glob(f".{index_dir.name}.link-*"):
        link.unlink(missing_ok=True)

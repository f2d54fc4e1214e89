"""Promote a retrained reader only if it is not worse: evaluate, compare, install atomically, roll back.

``finetune train ... --promote-if-better DIR`` (and the admin console's retrain button) train a
candidate, then ``promote_if_better`` scores the candidate and the model served from ``DIR`` on the
same fixed dev set with ``finetune evaluate``'s path (``evaluate_model``: same windows, decoder and
no-answer threshold as serving). The candidate is installed only when neither its F1 nor, on data
with unanswerable questions, its no-answer accuracy (``NoAns_exact``: the share of unanswerable
questions it declines) is lower than the served model's.

Installing keeps the replaced model in ``DIR.previous`` (``rollback_model`` swaps them back). The
candidate is first copied beside ``DIR``, so a crash at any point before the swap leaves the served
model untouched; the swap itself is one ``renameat2(RENAME_EXCHANGE)`` on Linux, so a bot reloading at
that moment reads the old model or the new one, never a missing folder (elsewhere it is two renames,
with a moment in between where ``DIR`` is missing and the reload fails and can be retried).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.atomic import make_temp_dir, remove_path, write_json_atomic
from finetune.errors import FinetuneError

logger = logging.getLogger(__name__)

PREVIOUS_SUFFIX = ".previous"
# renameat2(2) flags and the "current directory" file descriptor (linux/fcntl.h, linux/fs.h).
RENAME_EXCHANGE = 2
AT_FDCWD = -100


class PromotionError(FinetuneError):
    """A model cannot be installed or rolled back (the message names the folder)."""


@dataclass(frozen=True)
class ModelScores:
    """One model's scores on the dev set.

    Attributes:
        model: the model directory.
        f1: SQuAD F1 (percent).
        exact_match: SQuAD EM (percent).
        no_answer: share of unanswerable questions declined (percent), None without any.
        n: questions scored.
    """

    model: str
    f1: float
    exact_match: float
    no_answer: float | None
    n: int


@dataclass(frozen=True)
class PromotionReport:
    """The outcome (the ``promotion`` part of ``finetune train --promote-if-better --json``)."""

    promoted: bool
    reason: str
    candidate: ModelScores
    served: ModelScores
    dev: str
    installed: str | None = None
    previous: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def previous_dir(target: Path) -> Path:
    """Where the model replaced by an install is kept (for a rollback)."""
    return target.with_name(target.name + PREVIOUS_SUFFIX)


def holds_model(folder: Path) -> bool:
    """Whether ``folder`` is a model directory (``config.json`` in it)."""
    return (folder / "config.json").is_file()


def score_model(model_dir: Path, dev_file: Path, **evaluate_options: Any) -> ModelScores:
    """F1, EM and no-answer accuracy of a model on a dev file (``finetune evaluate``'s path)."""
    from finetune.commands import evaluate_model  # noqa: PLC0415 - loads torch

    report = evaluate_model(Path(model_dir), Path(dev_file), **evaluate_options)
    no_answer = report.breakdown.get("NoAns_exact")
    return ModelScores(str(model_dir), round(report.f1, 2), round(report.exact_match, 2),
                       None if no_answer is None else round(no_answer, 2), report.n)  # fmt: skip


def compare(candidate: ModelScores, served: ModelScores) -> tuple[bool, str]:
    """Whether the candidate is not worse than the served model, and a sentence saying why."""
    if candidate.f1 < served.f1:
        return False, f"candidate F1 {candidate.f1:.2f} is below the served model's {served.f1:.2f}"
    if (
        candidate.no_answer is not None
        and served.no_answer is not None
        and candidate.no_answer < served.no_answer
    ):
        return False, (
            f"candidate declines {candidate.no_answer:.1f}% of unanswerable questions, "
            f"the served model {served.no_answer:.1f}%"
        )
    noans = (
        ""
        if candidate.no_answer is None
        else f", no-answer {candidate.no_answer:.1f}% vs {served.no_answer:.1f}%"
    )
    return True, f"candidate F1 {candidate.f1:.2f} vs {served.f1:.2f}{noans}: not worse"


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # no glibc, or one older than 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    logger.info("renameat2 exchange of %s and %s failed: %s", a, b, os.strerror(ctypes.get_errno()))
    return False


def _swap_in(new: Path, target: Path, previous: Path) -> None:
    """Put ``new`` at ``target`` and the folder that was at ``target`` at ``previous``."""
    remove_path(previous)
    if exchange_paths(new, target):
        os.replace(new, previous)  # ``new`` now holds the old model
        return
    os.replace(target, previous)  # from here until the next line, no model sits at target
    os.replace(new, target)


def install_model(candidate: Path, target: Path) -> Path | None:
    """Serve ``candidate`` from ``target``, keeping the model it replaces in ``previous_dir(target)``.

    Args:
        candidate: a model directory (copied, so it may live on another file system).
        target: the served model directory (``HELPLINE_MODEL_DIR``).

    Returns:
        Where the replaced model now is, or None when ``target`` held no model.

    Raises:
        PromotionError: ``target`` exists and is something other than a model or an empty folder.
    """
    target = Path(target)
    if target.exists() and not holds_model(target) and (not target.is_dir() or any(target.iterdir())):
        raise PromotionError(f"refusing to replace {target}: it exists and holds no model (no config.json)")
    tmp = make_temp_dir(target)
    try:
        shutil.copytree(candidate, tmp, dirs_exist_ok=True)
    except BaseException:
        remove_path(tmp)
        raise
    previous = previous_dir(target)
    kept = None
    if holds_model(target):
        _swap_in(tmp, target, previous)
        kept = previous
    else:
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    logger.info("installed %s as %s (previous: %s)", candidate, target, kept)
    return kept


def rollback_model(target: Path) -> Path:
    """Swap the served model and the one it replaced (a second rollback undoes the first).

    Returns:
        Where the model that was served now is.

    Raises:
        PromotionError: there is no previous model.
    """
    target, previous = Path(target), previous_dir(Path(target))
    if not holds_model(previous):
        raise PromotionError(f"no previous model in {previous} to roll back to")
    if not holds_model(target):
        os.replace(previous, target)
        return target
    if exchange_paths(previous, target):
        return previous
    parked = target.with_name(f".{target.name}.rollback")
    remove_path(parked)
    os.replace(target, parked)
    os.replace(previous, target)
    os.replace(parked, previous)
    return previous


def promote_if_better(
    candidate: Path,
    served: Path,
    target: Path,
    dev_file: Path,
    *,
    progress: Callable[[str], None] | None = None,
    **evaluate_options: Any,
) -> PromotionReport:
    """Score both models on the dev set; install the candidate at ``target`` only if it is not worse.

    Args:
        candidate: the newly trained model.
        served: the model served now (``target`` itself, or the fallback served while it is empty).
        target: the served model directory.
        dev_file: the fixed dev set (SQuAD).
        progress: called with the name of each stage.
        **evaluate_options: for ``evaluate_model`` (``limit``, ``device``, ``batch_size``...).

    Returns:
        What was decided and why, with both models' scores.
    """
    say = progress or (lambda stage: None)
    say("evaluating the candidate")
    candidate_scores = score_model(candidate, dev_file, **evaluate_options)
    say("evaluating the served model")
    served_scores = score_model(served, dev_file, **evaluate_options)
    better, reason = compare(candidate_scores, served_scores)
    report = PromotionReport(better, reason, candidate_scores, served_scores, str(dev_file))
    if not better:
        logger.info("not promoted: %s", reason)
        return report
    say("installing")
    kept = install_model(candidate, target)
    return dataclasses.replace(report, installed=str(target), previous=str(kept) if kept else None)


class ProgressFile:
    """Writes ``{"stage", "step", "total", "updated"}`` to a JSON file (atomically, at most 2 a second).

    The console's retraining job reads it to draw its progress bar.
    """

    MIN_INTERVAL_S = 0.5

    def __init__(self, path: Path):
        self.path = Path(path)
        self._last = 0.0
        self.stage, self.step, self.total = "starting", 0, 0

    def update(
        self, stage: str | None = None, step: int | None = None, total: int | None = None, force: bool = False
    ) -> None:
        """Record progress; written when forced, the stage changed, or enough time passed."""
        changed = stage is not None and stage != self.stage
        self.stage = stage or self.stage
        self.step = self.step if step is None else step
        self.total = self.total if total is None else total
        now = time.monotonic()
        if force or changed or now - self._last >= self.MIN_INTERVAL_S:
            self._last = now
            write_json_atomic(
                self.path,
                {"stage": self.stage, "step": self.step, "total": self.total, "updated": time.time()},
            )

    def stage_callback(self) -> Callable[[str], None]:
        """``progress`` for ``promote_if_better``."""
        return lambda stage: self.update(stage=stage, force=True)


def read_progress(path: Path) -> dict[str, Any] | None:
    """What a ``ProgressFile`` last wrote, or None."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

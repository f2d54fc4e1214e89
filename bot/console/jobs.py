"""The console's retraining job: train from the served reader, promote only if not worse, one at a time.

The job runs ``finetune train ... --promote-if-better HELPLINE_MODEL_DIR`` in a child process (the
training side of ``finetune`` is kept out of the bot: ARCHITECTURE.md, "bot -> finetune (reader only)";
and a training crash or out-of-memory kill cannot take the console down). It trains from the served
reader on the bundled training set plus the console's export, into ``<model dir>.candidate``; the child
scores the candidate and the served model on the same fixed dev set and installs the candidate
atomically only if it is not worse (``finetune.promote``). The child writes its stage and step count to
a progress file the page polls. A crash at any point before the install leaves the served model as it
was; the old model is kept in ``<model dir>.previous`` for a one-click rollback.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.atomic import write_json_atomic
from finetune.promote import PromotionError, previous_dir, rollback_model

logger = logging.getLogger(__name__)

# Lines of the child's stderr kept for the page when it fails.
LOG_LINES = 30


@dataclass(frozen=True)
class TrainingPlan:
    """What a retraining job trains on and where it installs.

    Attributes:
        model_dir: the served model directory (``HELPLINE_MODEL_DIR``), where a better model is installed.
        served: the model served now (``model_dir``, or the shipped reader while that is empty).
        train_data: the bundled training set the new annotations are added to.
        dev_data: the fixed dev set both models are scored on.
        work_dir: where the export, the candidate and the progress file go.
        extra_args: more ``finetune train`` options (``HELPLINE_CONSOLE_TRAIN_ARGS``).
    """

    model_dir: Path
    served: Path
    train_data: Path
    dev_data: Path
    work_dir: Path
    extra_args: tuple[str, ...] = ()

    def command(self, export_file: Path) -> list[str]:
        """The child's command line."""
        return [
            sys.executable, "-m", "finetune.cli", "train",
            "--data", str(self.train_data), "--data", str(export_file), "--dev", str(self.dev_data),
            "--base-model", str(self.served), "--output", str(self.work_dir / "candidate"), "--overwrite",
            "--promote-if-better", str(self.model_dir),
            "--progress-file", str(self.work_dir / "progress.json"), "--json", *self.extra_args,
        ]  # fmt: skip


@dataclass
class JobState:
    """The latest job (mutable; guarded by ``TrainingJobs._lock``)."""

    state: str = "idle"  # idle, running, done, failed
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    result: dict[str, Any] | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))


class TrainingJobs:
    """Starts and watches retraining jobs; at most one runs at a time.

    Args:
        plan: builds the job's paths and options when a job starts (the served model may change).
    """

    def __init__(self, plan: Any):
        self._plan = plan
        self._lock = threading.Lock()
        self._job = JobState()
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self, export: dict[str, Any]) -> str | None:
        """Start a job on ``export`` (the console's SQuAD document); returns why not, or None."""
        questions = sum(len(p["qas"]) for a in export["data"] for p in a["paragraphs"])
        if questions == 0:
            return "nothing to train on yet: annotate a question or review feedback first"
        with self._lock:
            if self._job.state == "running":
                return "a retraining job is already running; wait for it to finish"
            try:
                plan: TrainingPlan = self._plan()
            except Exception as e:  # noqa: BLE001 - shown to the admin (e.g. no model to train from)
                return str(e)
            for path, what in ((plan.train_data, "training set"), (plan.dev_data, "dev set")):
                if not path.is_file():
                    return f"the {what} {path} does not exist (HELPLINE_CONSOLE_TRAIN_DATA / _DEV_DATA)"
            plan.work_dir.mkdir(parents=True, exist_ok=True)
            lock = _take_lock(plan.work_dir / "job.lock")
            if lock is None:
                return (
                    "a retraining job is already running (started by another console); wait for it to finish"
                )
            export_file = plan.work_dir / "annotations.json"
            write_json_atomic(export_file, export)
            (plan.work_dir / "progress.json").unlink(missing_ok=True)
            command = plan.command(export_file)
            logger.info("retraining: %s", shlex.join(command))
            self._job = JobState(
                state="running", started_at=time.time(), message=f"{questions} new questions"
            )
            try:
                # The child inherits the locked file: the lock lasts as long as the training does, even
                # when this console is restarted meanwhile.
                self._process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                    pass_fds=(lock.fileno(),),
                )  # fmt: skip
            finally:
                lock.close()
            self._thread = threading.Thread(target=self._watch, args=(self._process, plan), daemon=True)
            self._thread.start()
        return None

    def _watch(self, process: subprocess.Popen[str], plan: TrainingPlan) -> None:
        """Collect the child's output; record its outcome."""
        job = self._job
        assert process.stderr is not None and process.stdout is not None
        for line in process.stderr:
            job.log.append(line.rstrip()[-300:])
        stdout = process.stdout.read()
        code = process.wait()
        with self._lock:
            job.finished_at = time.time()
            if code != 0:
                job.state = "failed"
                errors = [line for line in job.log if line.startswith("error:")]
                job.message = errors[-1] if errors else f"training stopped with exit code {code}"
                job.message += "; the served model is unchanged"
                return
            try:
                job.result = json.loads(stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                job.state, job.message = "failed", "training printed no result; the served model is unchanged"
                return
            job.state = "done"
            promotion = job.result.get("promotion") or {}
            if promotion.get("promoted"):
                job.message = (
                    f"installed the new model: {promotion['reason']}. Send /reload to the bot to serve it."
                )
            else:
                job.message = f"kept the served model: {promotion.get('reason', 'no comparison')}"

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running job's watcher (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self) -> dict[str, Any]:
        """``GET /api/train``: state, stage, step/total, fraction, message, result, log tail."""
        with self._lock:
            job = self._job
            progress = self._progress() if job.state == "running" else None
            model_dir = self._model_dir()
            return {
                "state": job.state,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
                "stage": (progress or {}).get("stage"),
                "step": (progress or {}).get("step", 0),
                "total": (progress or {}).get("total", 0),
                "fraction": _fraction(job.state, progress),
                "message": job.message,
                "result": job.result,
                "log": list(job.log)[-10:] if job.state == "failed" else [],
                "rollback_available": model_dir is not None
                and (previous_dir(model_dir) / "config.json").is_file(),
            }

    def _model_dir(self) -> Path | None:
        try:
            return self._plan().model_dir
        except Exception:  # noqa: BLE001 - no plan yet: nothing to roll back either
            return None

    def _progress(self) -> dict[str, Any] | None:
        try:
            path = self._plan().work_dir / "progress.json"
            return json.loads(path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - not written yet, or mid-replace
            return None

    def rollback(self) -> str | None:
        """Serve the previous model again (swapping it with the current one); returns why not, or None."""
        with self._lock:
            if self._job.state == "running":
                return "a retraining job is running; roll back when it has finished"
            model_dir = self._model_dir()
            if model_dir is None:
                return "no model directory configured"
            try:
                rollback_model(model_dir)
            except (PromotionError, OSError) as e:
                return str(e)
            self._job.message = (
                f"rolled back: {model_dir} serves the previous model again. Send /reload to the bot."
            )
        return None


def _take_lock(path: Path) -> Any:
    """An open file holding an exclusive ``flock`` on ``path``, or None when another process holds it."""
    handle = open(path, "a+b")  # noqa: SIM115 - returned open: the caller hands it to the child
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _fraction(state: str, progress: dict[str, Any] | None) -> float:
    """How far the job is, 0..1: training is the first 80%, evaluating and installing the rest."""
    if state in ("done", "failed"):
        return 1.0
    if not progress:
        return 0.0
    stage, step, total = progress.get("stage"), progress.get("step", 0), progress.get("total", 0)
    if stage == "training":
        return 0.8 * (step / total) if total else 0.0
    return {"evaluating the candidate": 0.8, "evaluating the served model": 0.9, "installing": 0.98}.get(
        stage, 0.0
    )

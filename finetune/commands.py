"""The library side of ``finetune check``, ``evaluate`` and ``split``: plain functions returning typed
reports (frozen dataclasses) whose ``to_json()`` is the document the CLI prints, so they are easy to
call and test without the CLI."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.atomic import write_json_atomic
from finetune.errors import ConfigError, FileAccessError
from finetune.features import count_multi_window
from finetune.models import ModelNotFoundError, resolve_model_ref
from finetune.reader_config import ReaderConfig
from finetune.squad import (
    SquadFormatError,
    SquadReport,
    load_squad,
    read_json,
    sample_examples,
    split_articles,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckReport:
    """What ``finetune check`` found.

    Attributes:
        squad: the counts and rejections of the files.
        multi_window: questions whose context needs more than one window (None: no tokenizer).
    """

    squad: SquadReport
    multi_window: int | None

    def to_json(self) -> dict[str, Any]:
        """``{"articles", "paragraphs", "questions", "answers", "unanswerable", "repaired",
        "rejected": [{"id", "reason"}], "multi_window"}`` (ARCHITECTURE.md, "Command contracts")."""
        rejected = [dataclasses.asdict(r) for r in self.squad.rejected]  # a list: JSON's array
        return {**dataclasses.asdict(self.squad), "rejected": rejected, "multi_window": self.multi_window}


@dataclass(frozen=True)
class EvaluationReport:
    """What ``finetune evaluate`` measured.

    Attributes:
        exact_match: SQuAD exact match, percent.
        f1: SQuAD F1, percent.
        n: questions scored.
        seconds: time spent predicting.
        questions_per_second: ``n / seconds``.
        model: the model directory.
        data: the SQuAD file.
        backend: the reader backend that read (``torch``, ``onnx``, ``onnx-int8``, ``openvino``).
        breakdown: on v2 data, ``HasAns_*`` and ``NoAns_*`` scores and totals (else empty).
    """

    exact_match: float
    f1: float
    n: int
    seconds: float
    questions_per_second: float
    model: str
    data: str
    backend: str = "torch"
    breakdown: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"exact_match", "f1", "n", "seconds", "questions_per_second", "model", "data"}`` + breakdown."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "breakdown"}
        return {**values, **self.breakdown}


@dataclass(frozen=True)
class SplitReport:
    """What ``finetune split`` wrote: articles and questions on each side."""

    train_articles: int
    dev_articles: int
    train_questions: int
    dev_questions: int

    def to_json(self) -> dict[str, int]:
        """``{"train_articles", "dev_articles", "train_questions", "dev_questions"}``."""
        return dataclasses.asdict(self)


def check_files(
    files: list[Path],
    tokenizer_ref: str,
    max_seq_length: int = ReaderConfig.max_seq_length,
    doc_stride: int = ReaderConfig.doc_stride,
) -> CheckReport:
    """Validate SQuAD files and count the questions whose context needs more than one window.

    Args:
        files: the SQuAD files.
        tokenizer_ref: the tokenizer for the window count (``minilm``, a model dir or a hub id).
        max_seq_length: tokens per window.
        doc_stride: window overlap.

    Returns:
        The report; ``multi_window`` is None when the tokenizer cannot be loaded (a warning says why).
    """
    windows = ReaderConfig(max_seq_length=max_seq_length, doc_stride=doc_stride).windows
    data = load_squad(files)
    try:
        tokenizer = _load_tokenizer(tokenizer_ref)
    except (ModelNotFoundError, OSError) as e:  # OSError: what transformers raises for a bad folder
        logger.warning("cannot count windows: %s", e)
        return CheckReport(data.report, None)
    examples = data.examples
    multi_window = count_multi_window(
        tokenizer, [e.question for e in examples], [e.context for e in examples], windows
    )
    return CheckReport(data.report, multi_window)


def _load_tokenizer(ref: str) -> Any:
    from transformers import AutoTokenizer  # noqa: PLC0415 - heavy, and only some commands need it

    return AutoTokenizer.from_pretrained(resolve_model_ref(ref))


def evaluate_model(
    model_dir: Path,
    data_file: Path,
    *,
    limit: int | None = None,
    predictions_out: Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
    max_seq_length: int | None = None,
    doc_stride: int | None = None,
    seed: int = 42,
    precision: str = "auto",
    backend: str = "auto",
) -> EvaluationReport:
    """Score a model on a SQuAD file with the official metric.

    Args:
        model_dir: the model directory.
        data_file: the SQuAD file.
        limit: score a seeded random sample of this many questions (None: all).
        predictions_out: where to write ``{id: answer}`` JSON (None: nowhere).
        batch_size: windows per forward pass.
        device: cpu/cuda (None: best available).
        max_seq_length: tokens per window (None: the model's ``reader_config.json``).
        doc_stride: window overlap (None: the model's).
        seed: the sampling seed.
        precision: autocast precision (``auto``, ``fp32``, ``bf16``, ``fp16``).
        backend: the reader backend (``auto``, ``torch``, ``onnx``, ``onnx-int8``, ``openvino``).

    Returns:
        The scores (with the HasAns/NoAns breakdown on v2 data) and the time they took.
    """
    from finetune.evaluation import build_eval_set, decode_answers, score_predictions  # noqa: PLC0415
    from finetune.reader import Reader  # noqa: PLC0415

    examples = sample_examples(load_squad([data_file]).examples, limit, seed)
    if not examples:
        raise SquadFormatError(f"{data_file}: no usable questions to evaluate")
    reader = Reader(
        model_dir, device=device, max_seq_length=max_seq_length, doc_stride=doc_stride, batch_size=batch_size,
        precision=precision, backend=backend,
    )  # fmt: skip
    reader.warm_up()
    started = time.perf_counter()
    eval_set = build_eval_set(reader.tokenizer, examples, reader.windows)
    predictions = decode_answers(
        eval_set, reader.forward(eval_set.windows), reader.decode, reader.config.null_threshold
    )
    seconds = time.perf_counter() - started
    scores = dict(score_predictions(eval_set, predictions))
    if predictions_out is not None:
        _write_json(predictions_out, predictions)
    return EvaluationReport(
        exact_match=scores.pop("exact_match"),
        f1=scores.pop("f1"),
        n=int(scores.pop("n")),
        seconds=round(seconds, 2),
        questions_per_second=round(len(examples) / seconds, 1),
        model=str(model_dir),
        data=str(data_file),
        backend=reader.backend,
        breakdown=scores,
    )


def split_file(path: Path, dev_articles: int, seed: int, train_out: Path, dev_out: Path) -> SplitReport:
    """Split a SQuAD file by article into train and dev files (both written atomically).

    Returns:
        The articles and questions on each side.
    """
    if train_out.resolve() == dev_out.resolve():
        raise ConfigError(f"--train-out and --dev-out are the same file: {train_out}")
    train, dev = split_articles(read_json(path), str(path), dev_articles, seed)
    _write_json(train_out, train)
    _write_json(dev_out, dev)
    return SplitReport(
        train_articles=len(train["data"]),
        dev_articles=len(dev["data"]),
        train_questions=_count_questions(train),
        dev_questions=_count_questions(dev),
    )


def _write_json(path: Path, document: object) -> None:
    """``write_json_atomic``, with an unwritable destination as a user error naming it."""
    try:
        write_json_atomic(path, document)
    except OSError as e:
        raise FileAccessError(f"{path}: cannot write it ({e.strerror or e})") from None


def _count_questions(document: dict[str, Any]) -> int:
    return sum(len(p.get("qas", [])) for a in document["data"] for p in a.get("paragraphs", []))

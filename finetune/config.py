"""The one configuration object of a training run, with its documented defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune.errors import ConfigError
from finetune.reader_config import ReaderConfig

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SAVE_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``train()`` needs; ``finetune train`` builds one from its options.

    Attributes:
        data: SQuAD training files (.json or .json.gz), mixed together (e.g. general + domain).
        output: the model directory written on success (replaced atomically).
        dev: a SQuAD dev file; when None, ``dev_fraction`` of the training contexts are held out.
        dev_fraction: share of training contexts (paragraphs) held out as dev when ``dev`` is None.
        base_model: ``minilm``, a local model directory (e.g. an earlier output), or a hub id.
        epochs: training epochs (2-3 is the usual for SQuAD).
        learning_rate: AdamW peak learning rate (after linear warmup, then linear decay).
        batch_size: windows per device per step.
        grad_accum: steps whose gradients are summed before one optimizer update.
        warmup_ratio: share of all updates spent warming the learning rate up from 0.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        max_seq_length: tokens per window (question + context + special tokens).
        doc_stride: tokens of overlap between consecutive windows of a long context.
        max_answer_length: longest answer the decoder returns, in tokens.
        n_best_size: start/end tokens the decoder pairs up per window.
        max_train_examples: a seeded random sample of this many training questions (None: all).
        max_dev_examples: a seeded random sample of this many dev questions (None: all).
        seed: seeds sampling, the dev split, weight init of the QA head and data order.
        early_stopping_patience: stop after this many epochs without a better dev F1 (0: never).
        resume: continue from the last checkpoint in the work directory.
        save_dtype: weights dtype of the saved model (float16 halves its size for shipping).
        precision: ``auto`` (bf16 on bf16 CPUs and GPUs, fp16 on other GPUs, else fp32), fp32, bf16, fp16.
        eval_batch_size: windows per forward pass in dev evaluation.
        dataloader_workers: DataLoader worker processes (None: from the CPU count).
        overwrite: replace an existing output directory (only once training has succeeded).
        keep_checkpoints: keep the work directory (checkpoints) after success.
    """

    data: tuple[Path, ...]
    output: Path
    dev: Path | None = None
    dev_fraction: float = 0.1
    base_model: str = "minilm"
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # The reader's settings: their defaults are ReaderConfig's, and reader_config() is saved with the model.
    max_seq_length: int = ReaderConfig.max_seq_length
    doc_stride: int = ReaderConfig.doc_stride
    max_answer_length: int = ReaderConfig.max_answer_length
    n_best_size: int = ReaderConfig.n_best_size
    max_train_examples: int | None = None
    max_dev_examples: int | None = None
    seed: int = 42
    early_stopping_patience: int = 2
    resume: bool = False
    save_dtype: str = "float32"
    precision: str = "auto"
    eval_batch_size: int = 256
    dataloader_workers: int | None = None
    overwrite: bool = False
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("at least one --data file is needed")
        if self.dev is None and not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be between 0 and 1, got {self.dev_fraction}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.save_dtype not in SAVE_DTYPES:
            raise ConfigError(f"save_dtype must be one of {', '.join(SAVE_DTYPES)}, got {self.save_dtype!r}")
        for name in ("epochs", "learning_rate", "batch_size", "grad_accum", "eval_batch_size"):
            # `not > 0`, so that nan (which compares False with everything) is refused too.
            if not getattr(self, name) > 0 or math.isinf(getattr(self, name)):
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be a number >= 0, got {self.weight_decay}")
        for name in ("max_train_examples", "max_dev_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        self.reader_config()  # checks the window and decoding settings

    def reader_config(self) -> ReaderConfig:
        """The window and decoding settings, as written to the model's ``reader_config.json``."""
        return ReaderConfig(self.max_seq_length, self.doc_stride, self.max_answer_length, self.n_best_size)

    @property
    def work_dir(self) -> Path:
        """Checkpoints live next to the output, so ``--resume`` finds them after an interruption."""
        return self.output.with_name(self.output.name + ".work")

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON values (for metrics.json and the model card)."""
        values = asdict(self)
        return {
            k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "data" else v)
            for k, v in values.items()
        }

"""Fine-tune a BERT-style model for extractive QA on SQuAD-format data with ``transformers.Trainer``.

``train(config)`` loads and checks the data, tokenizes it into labelled windows, trains with AdamW,
linear warmup/decay, mixed precision and dynamic padding, evaluates dev EM/F1 after every epoch with
the same decoder and metric as ``finetune evaluate``, keeps the best epoch, stops early, and writes the
model directory atomically. Checkpoints live in ``<output>.work/`` so ``--resume`` can continue an
interrupted run. Works unchanged under ``torchrun``/``accelerate launch`` (only rank 0 writes output).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from finetune.atomic import make_temp_dir, remove_path, replace_dir
from finetune.config import TrainConfig
from finetune.errors import FinetuneError
from finetune.evaluation import EvalSet, build_eval_set, predict_answers, score_predictions
from finetune.features import TrainFeature, prepare_train_features
from finetune.inference import autocast_dtype, cpu_supports_bf16
from finetune.models import resolve_model_ref
from finetune.postprocess import DecodeSettings
from finetune.report import write_model_card, write_training_curve
from finetune.squad import SquadData, SquadExample, load_squad, sample_examples, split_by_context

logger = logging.getLogger(__name__)

# Training-loss log points per epoch (the curve's per-epoch loss is their mean).
LOGS_PER_EPOCH = 10
# Pad batches to a multiple of this on GPUs: tensor cores work on multiples of 8.
GPU_PAD_MULTIPLE = 8
# DataLoader workers per process are capped here: collation is light, more workers only cost memory.
MAX_WORKERS = 8


class TrainingError(FinetuneError, RuntimeError):
    """Training cannot start or finish (the message says why)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (the ``finetune train --json`` document).

    Attributes:
        output: the model directory.
        train_examples: training questions used.
        train_features: training windows (a long context gives several).
        epochs: epochs actually run (early stopping may cut them short).
        best_dev: ``{"exact_match", "f1"}`` of the kept epoch on the dev set.
        seconds: wall time of the whole run.
    """

    output: str
    train_examples: int
    train_features: int
    epochs: float
    best_dev: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FeatureDataset(torch.utils.data.Dataset):
    """Training windows as the dicts DataCollatorWithPadding pads (numpy arrays stored, lists served)."""

    def __init__(self, features: Sequence[TrainFeature]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        feature = self.features[index]
        return {
            "input_ids": feature.input_ids.tolist(),
            "token_type_ids": feature.token_type_ids.tolist(),
            "attention_mask": [1] * len(feature.input_ids),
            "start_positions": feature.start_position,
            "end_positions": feature.end_position,
        }


class SquadTrainer(Trainer):
    """A Trainer whose evaluation is SQuAD EM/F1 from decoded spans, not a loss.

    Trainer's own evaluation loop sees only per-window logits; SQuAD scores need the windows grouped
    per question, decoded to text and compared with every gold answer, so ``evaluate`` is replaced by
    the path ``finetune evaluate`` uses. Every rank scores the whole dev set, so all ranks agree on the
    best epoch and on early stopping without a gather.
    """

    def __init__(self, *args: Any, squad_eval: EvalSet, decode: DecodeSettings, pad_id: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.squad_eval = squad_eval
        self.decode = decode
        self.pad_id = pad_id

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"):
        """Score the dev set; log and hand the metrics to callbacks (early stopping, best checkpoint)."""
        started = time.perf_counter()
        dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        predictions = predict_answers(
            self.model,
            self.squad_eval,
            pad_id=self.pad_id,
            batch_size=self.args.per_device_eval_batch_size,
            decode=self.decode,
            dtype=dtype,
        )
        scores = score_predictions(self.squad_eval, predictions)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in scores.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - started, 3)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


# ----------------------------------------------------------------------------------------------------
# Data


def load_splits(config: TrainConfig) -> tuple[SquadData, tuple[SquadExample, ...], tuple[SquadExample, ...]]:
    """Load the training files and make the (sampled) train and dev example sets.

    Returns:
        The loaded training data, the train examples, and the dev examples.
    """
    data = load_squad(config.data)
    if config.dev is not None:
        train, dev = data.examples, load_squad([config.dev]).examples
        overlap = {e.context for e in dev} & {e.context for e in train}
        if overlap:
            logger.warning("%d dev contexts also occur in the training data", len(overlap))
    else:
        train, dev = split_by_context(data.examples, config.dev_fraction, config.seed)
    train = sample_examples(train, config.max_train_examples, config.seed)
    dev = sample_examples(dev, config.max_dev_examples, config.seed)
    if not train or not dev:
        raise TrainingError(f"need training and dev questions, got {len(train)} and {len(dev)}")
    return data, train, dev


# ----------------------------------------------------------------------------------------------------
# Trainer set-up


def is_main_process() -> bool:
    """Rank 0 under torchrun/accelerate (which set RANK), or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def resolve_precision(precision: str) -> str:
    """``auto`` -> bf16/fp16/fp32 for this machine; other values unchanged."""
    if precision != "auto":
        return precision
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = autocast_dtype(device, "auto")
    return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[dtype]


def _dataloader_workers(config: TrainConfig) -> int:
    """Workers per process: none on CPU (they would steal cores from the matmuls), some on GPUs."""
    if config.dataloader_workers is not None:
        return config.dataloader_workers
    if not torch.cuda.is_available():
        return 0
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) // _world_size() // 2))


def _version_specific_arguments(warmup_ratio: float) -> dict[str, Any]:
    """Arguments whose names changed across transformers 5.x releases, picked by what exists."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs: dict[str, Any] = {}
    # Length-grouped batches pad less: ~3x fewer tokens on SQuAD than random batches.
    if "train_sampling_strategy" in names:
        kwargs["train_sampling_strategy"] = "group_by_length"
    else:
        kwargs["group_by_length"] = True
    if "warmup_ratio" in names:
        kwargs["warmup_ratio"] = warmup_ratio
    else:
        kwargs["warmup_steps"] = warmup_ratio  # a float in [0, 1) is a ratio in newer releases
    return kwargs


def training_arguments(config: TrainConfig, n_features: int) -> TrainingArguments:
    """TrainingArguments for a run (work dir, epochs, optimiser, precision, per-epoch eval and save)."""
    precision = resolve_precision(config.precision)
    updates_per_epoch = max(1, n_features // (config.batch_size * config.grad_accum * _world_size()))
    workers = _dataloader_workers(config)
    return TrainingArguments(
        output_dir=str(config.work_dir),
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=max(1, updates_per_epoch // LOGS_PER_EPOCH),
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        save_total_limit=2,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.grad_accum,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        report_to="none",
        disable_tqdm=False,
        **_version_specific_arguments(config.warmup_ratio),
    )


def _prepare_work_dir(config: TrainConfig) -> str | None:
    """The checkpoint to resume from (None: start fresh, clearing old checkpoints)."""
    work = config.work_dir
    last = last_complete_checkpoint(work) if config.resume else None
    if config.resume:
        if last is None:
            logger.warning("--resume: no checkpoint in %s; starting from the beginning", work)
        else:
            logger.info("resuming from %s", last)
        return last
    if work.exists() and is_main_process():
        logger.info("removing old checkpoints in %s (pass --resume to continue from them)", work)
        shutil.rmtree(work)
    return None


def last_complete_checkpoint(work: Path) -> str | None:
    """The newest checkpoint in ``work`` that was saved whole, or None.

    A kill during a save leaves a checkpoint without its trainer state or with cut weights, and
    Trainer would fail on it at every ``--resume``; such checkpoints are deleted (with a log line) and
    the one before is used.
    """
    while work.is_dir() and (last := get_last_checkpoint(str(work))) is not None:
        problem = checkpoint_problem(Path(last))
        if problem is None:
            return last
        logger.warning("deleting incomplete checkpoint %s (%s); resuming from the one before", last, problem)
        shutil.rmtree(last)
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when it is complete.

    Trainer writes ``trainer_state.json`` last, after weights, optimizer and RNG state; the weights'
    safetensors header says how long the file must be, so a cut file is told apart too.
    """
    from safetensors import safe_open  # noqa: PLC0415 - only resuming needs it

    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"no readable trainer_state.json: {type(error).__name__}"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("pytorch_model*.bin")):
        return "no model weights"
    for path in weights:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as error:  # noqa: BLE001 - SafetensorError derives from Exception only
            return f"{path.name}: {error}"
    return None


def remove_leftovers(output: Path) -> list[Path]:
    """Delete what interrupted runs left beside ``output``: ``write_output``'s temp folders
    (``.NAME.xxxxxxxx``, each a whole model) and a swapped-out ``.NAME.old``.

    Returns:
        The folders removed.
    """
    # make_temp_dir's names end in 12 hex digits; mkdtemp's of earlier versions in 8 characters.
    pattern = re.compile(rf"\.{re.escape(output.name)}\.(old|[0-9a-f]{{12}}|[a-z0-9_]{{8}})")
    parent = output.parent if output.parent.is_dir() else None
    removed = [p for p in (parent.iterdir() if parent else ()) if pattern.fullmatch(p.name)]
    for path in removed:
        logger.info("removing %s, left by an earlier run that was interrupted", path)
        remove_path(path)
    return removed


def _check_output(config: TrainConfig) -> None:
    """Refuse, before any work, to train into an existing output unless --overwrite."""
    if config.output.exists() and not config.overwrite:
        raise TrainingError(
            f"output {config.output} already exists; choose another --output or pass --overwrite"
        )


# ----------------------------------------------------------------------------------------------------
# The run


def train(config: TrainConfig, on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Fine-tune, evaluate each epoch, keep the best epoch, and write the model directory.

    Args:
        config: the run's settings.
        on_step: called as ``on_step(step, total_steps)`` after each optimizer step (progress bars).

    Returns:
        The summary of the run (also written to ``metrics.json`` in the output).

    Raises:
        TrainingError: the output exists, or the data leaves no train/dev questions.
        finetune.squad.SquadFormatError: a data file cannot be read.
        finetune.models.ModelNotFoundError: the base model cannot be found.
    """
    started = time.perf_counter()
    _check_output(config)
    if is_main_process():
        remove_leftovers(config.output)
    data, train_examples, dev_examples = load_splits(config)
    model_path = resolve_model_ref(config.base_model)
    tokenizer = _fast_tokenizer(model_path, config.base_model)
    features, dev_set = _tokenize(tokenizer, train_examples, dev_examples, config)
    logger.info("tokenized in %.0fs", time.perf_counter() - started)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32)
    trainer = build_trainer(config, model, tokenizer, features, dev_set)
    if on_step is not None:
        trainer.add_callback(StepCallback(on_step))
    train_output = trainer.train(resume_from_checkpoint=_prepare_work_dir(config))
    history = epoch_history(trainer.state.log_history)
    best = max(history, key=lambda h: h["f1"]) if history else {"exact_match": 0.0, "f1": 0.0}
    result = TrainResult(
        output=str(config.output),
        train_examples=len(train_examples),
        train_features=len(features),
        epochs=round(float(trainer.state.epoch or 0.0), 3),
        best_dev={"exact_match": best["exact_match"], "f1": best["f1"]},
        seconds=round(time.perf_counter() - started, 1),
    )
    if trainer.is_world_process_zero():
        details = {
            "history": history,
            "dev_examples": len(dev_examples),
            "dev_features": len(dev_set.windows),
            "train_loss": train_output.training_loss,
            "data_files": list(data.files),
            "repaired": data.report.repaired,
            "rejected": len(data.report.rejected),
        }
        write_output(config, trainer.model, tokenizer, result, details)
        if not config.keep_checkpoints:
            shutil.rmtree(config.work_dir, ignore_errors=True)
    return result


def _fast_tokenizer(model_path: str, ref: str) -> Any:
    """The model's tokenizer, which must be a fast one: labels come from its offset mappings."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{ref}: needs a fast tokenizer (offset mappings)")
    return tokenizer


def _tokenize(
    tokenizer: Any,
    train_examples: Sequence[SquadExample],
    dev_examples: Sequence[SquadExample],
    config: TrainConfig,
) -> tuple[list[TrainFeature], EvalSet]:
    """Training windows with labels, and the dev set's windows."""
    windows = config.reader_config().windows
    features = prepare_train_features(tokenizer, train_examples, windows)
    dev_set = build_eval_set(tokenizer, dev_examples, windows)
    logger.info(
        "%d train questions -> %d windows; %d dev questions -> %d windows",
        len(train_examples), len(features), len(dev_examples), len(dev_set.windows),
    )  # fmt: skip
    return features, dev_set


def build_trainer(
    config: TrainConfig, model: Any, tokenizer: Any, features: Sequence[TrainFeature], dev_set: EvalSet
) -> SquadTrainer:
    """The Trainer with dynamic padding, early stopping and SQuAD evaluation."""
    args = training_arguments(config, len(features))
    multiple = GPU_PAD_MULTIPLE if torch.cuda.is_available() else None
    callbacks = []
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = SquadTrainer(
        model=model,
        args=args,
        train_dataset=FeatureDataset(features),
        eval_dataset=dev_set.windows,  # not iterated by Trainer: SquadTrainer.evaluate reads squad_eval
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple),
        processing_class=tokenizer,
        callbacks=callbacks,
        squad_eval=dev_set,
        decode=config.reader_config().decode,
        pad_id=tokenizer.pad_token_id or 0,
    )
    if trainer.pop_callback(ProgressCallback) is not None:  # absent when tqdm is disabled
        trainer.add_callback(QuietProgressCallback())
    return trainer


class StepCallback(TrainerCallback):
    """Reports ``(step, total_steps)`` after every optimizer step (the console's progress bar)."""

    def __init__(self, on_step: Callable[[int, int], None]):
        self.on_step = on_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Pass the step count on."""
        self.on_step(int(state.global_step), int(state.max_steps))


class QuietProgressCallback(ProgressCallback):
    """Trainer's progress bar without the dict it prints at every logging step.

    The per-epoch loss and dev scores go to metrics.json, the training curve and the summary line
    ``finetune train`` prints; between them, one bar is all a person needs to watch.
    """

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Print nothing (the base class writes ``str(logs)`` under the bar)."""


def epoch_history(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch mean training loss and dev EM/F1 from ``trainer.state.log_history``.

    Args:
        log_history: Trainer's log entries (``loss`` entries every few steps, ``eval_*`` each epoch).

    Returns:
        ``[{"epoch", "train_loss", "exact_match", "f1"}, ...]`` in epoch order.
    """
    history = []
    losses = [(e["epoch"], e["loss"]) for e in log_history if "loss" in e and "epoch" in e]
    previous = 0.0
    for entry in (e for e in log_history if "eval_f1" in e):
        epoch = float(entry["epoch"])
        in_epoch = [loss for at, loss in losses if previous < at <= epoch + 1e-9]
        history.append(
            {
                "epoch": round(epoch, 3),
                "train_loss": round(sum(in_epoch) / len(in_epoch), 4) if in_epoch else None,
                "exact_match": round(entry["eval_exact_match"], 2),
                "f1": round(entry["eval_f1"], 2),
            }
        )
        previous = epoch
    return history


# ----------------------------------------------------------------------------------------------------
# Output


def describe_hardware() -> str:
    """One line naming the accelerator (or the CPU) that trained."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {os.cpu_count()} cores, bf16 {'yes' if cpu_supports_bf16() else 'no'}"


def write_output(
    config: TrainConfig, model: Any, tokenizer: Any, result: TrainResult, details: dict[str, Any]
) -> None:
    """Write model, tokenizer, metrics.json, curve and card to a temp dir, then rename it into place."""
    tmp = make_temp_dir(config.output)
    try:
        if config.save_dtype == "float16":
            model = model.to(torch.float16)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config.reader_config().save(tmp)  # served with the windows it was trained and evaluated with
        metrics = {
            **result.to_json(),
            **details,
            "hardware": describe_hardware(),
            "precision": resolve_precision(config.precision),
            "settings": config.settings(),
            "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        }
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_training_curve(details["history"], tmp / "training_curve.png")
        write_model_card(metrics, tmp / "README.md")
        replace_dir(tmp, config.output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _transformers_version() -> str:
    import transformers  # noqa: PLC0415 - only for the version string

    return transformers.__version__

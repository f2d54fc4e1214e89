"""``finetune``: check SQuAD data, train and evaluate the QA reader, ask it one question, split data.

Thin typer commands: parse options, build a config, call the library. ``--json`` prints exactly one
JSON document on stdout; progress and logs go to stderr. Bad input ends with a one-line message on
stderr and exit code 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from finetune.config import TrainConfig
from finetune.errors import ConfigError, FileAccessError, FinetuneError
from finetune.models import MINILM
from finetune.reader_config import ReaderConfig

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="finetune",
    help="Check SQuAD data, fine-tune and evaluate the extractive QA reader.",
    no_args_is_help=True,
    add_completion=False,
)

ADVANCED = "Advanced"
SEED_DEFAULT = 42

# Errors that mean bad input or a missing artifact: one line, exit 1, no traceback. Anything else
# (a ValueError or OSError from our own code or a library) is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (FinetuneError,)


def _version() -> str:
    try:
        return metadata.version("helpline")
    except metadata.PackageNotFoundError:  # run from a checkout with PYTHONPATH=. (no install)
        return "unknown (not installed)"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"finetune {_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    """Check SQuAD data, fine-tune and evaluate the extractive QA reader."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # matplotlib's font manager logs its font scan at INFO in the middle of a training run.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into a one-line message and exit code 1."""
    try:
        yield
    except USER_ERRORS as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None


def quiet_model_loading() -> None:
    """No "Loading weights" bar per from_pretrained: transformers reads this before its first import."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    loaded = sys.modules.get("transformers.utils.logging")
    if loaded is not None:  # imported already (in-process callers): the variable was read at import
        loaded.disable_progress_bar()


def _emit(document: Any, as_json: bool, human: str) -> None:
    """Print the JSON document, or the human summary."""
    typer.echo(json.dumps(document, ensure_ascii=False) if as_json else human)


# ----------------------------------------------------------------------------------------------------


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="SQuAD files (.json or .json.gz).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    tokenizer: Annotated[
        str, typer.Option(help="Tokenizer for the window count (minilm, a model dir or a hub id).")
    ] = MINILM,
    max_seq_length: Annotated[
        int, typer.Option(help="Tokens per window.", rich_help_panel=ADVANCED)
    ] = ReaderConfig.max_seq_length,
    doc_stride: Annotated[
        int, typer.Option(help="Window overlap in tokens.", rich_help_panel=ADVANCED)
    ] = ReaderConfig.doc_stride,
) -> None:
    """Validate SQuAD v1.1/v2.0 files: counts, repaired offsets, rejected questions, long contexts."""
    from finetune.commands import check_files  # noqa: PLC0415 - keeps --help fast

    with user_errors():
        report = check_files(files, tokenizer, max_seq_length, doc_stride)
    s = report.squad
    human = (
        f"{s.articles} articles, {s.paragraphs} paragraphs, {s.questions} questions, "
        f"{s.answers} answers, {s.unanswerable} unanswerable, {s.repaired} repaired, "
        f"{len(s.rejected)} rejected, {report.multi_window} need more than one window"
    )
    human += "".join(f"\n  rejected {r.id}: {r.reason}" for r in s.rejected)
    _emit(report.to_json(), as_json, human)


def _advanced(help_text: str) -> Any:
    """An option listed under the "Advanced" heading of ``--help``."""
    return typer.Option(help=help_text, rich_help_panel=ADVANCED)


# The train options' defaults are TrainConfig's (a dataclass field's default is its class attribute).
TRAIN = TrainConfig
# `finetune train` options that are not TrainConfig fields.
NOT_TRAIN_CONFIG = frozenset({"as_json", "promote_if_better", "progress_file"})


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", help="SQuAD training file; repeat to mix files.")],
    output: Annotated[Path, typer.Option(help="Model directory to write (atomically, on success).")],
    dev: Annotated[
        Path | None, typer.Option(help="SQuAD dev file (else --dev-fraction is held out).")
    ] = TRAIN.dev,
    dev_fraction: Annotated[
        float, typer.Option(help="Share of contexts held out as dev when no --dev.")
    ] = TRAIN.dev_fraction,
    base_model: Annotated[
        str, typer.Option(help="minilm, a model dir (e.g. an earlier output), or hub id.")
    ] = TRAIN.base_model,
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = TRAIN.epochs,
    learning_rate: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = TRAIN.learning_rate,
    batch_size: Annotated[int, typer.Option(help="Windows per device per step.")] = TRAIN.batch_size,
    grad_accum: Annotated[int, _advanced("Gradient accumulation steps.")] = TRAIN.grad_accum,
    warmup_ratio: Annotated[float, _advanced("Warmup share of updates.")] = TRAIN.warmup_ratio,
    weight_decay: Annotated[float, _advanced("AdamW weight decay.")] = TRAIN.weight_decay,
    max_seq_length: Annotated[int, _advanced("Tokens per window.")] = TRAIN.max_seq_length,
    doc_stride: Annotated[int, _advanced("Window overlap in tokens.")] = TRAIN.doc_stride,
    max_answer_length: Annotated[int, _advanced("Longest answer in tokens.")] = TRAIN.max_answer_length,
    max_train_examples: Annotated[
        int | None, typer.Option(help="Seeded random sample of N questions.")
    ] = TRAIN.max_train_examples,
    max_dev_examples: Annotated[
        int | None, typer.Option(help="Seeded random sample of N dev questions.")
    ] = TRAIN.max_dev_examples,
    seed: Annotated[
        int, typer.Option(help="Seed for sampling, the split, init and data order.")
    ] = TRAIN.seed,
    early_stopping_patience: Annotated[
        int, _advanced("Epochs without better dev F1 before stopping (0: never).")
    ] = TRAIN.early_stopping_patience,
    resume: Annotated[
        bool, typer.Option(help="Continue from the last checkpoint in <output>.work/.")
    ] = TRAIN.resume,
    save_dtype: Annotated[
        str, typer.Option(help="float32, or float16 to ship a small model.")
    ] = TRAIN.save_dtype,
    precision: Annotated[str, _advanced("auto, fp32, bf16 or fp16.")] = TRAIN.precision,
    eval_batch_size: Annotated[int, _advanced("Dev windows per pass.")] = TRAIN.eval_batch_size,
    dataloader_workers: Annotated[
        int | None, _advanced("DataLoader workers (default: by CPU count).")
    ] = TRAIN.dataloader_workers,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --output when training succeeds.")
    ] = TRAIN.overwrite,
    keep_checkpoints: Annotated[bool, _advanced("Keep <output>.work/ when done.")] = TRAIN.keep_checkpoints,
    promote_if_better: Annotated[
        Path | None,
        typer.Option(
            help="Then score the output and the model served from DIR on --dev; install the output in DIR "
            "(keeping the old one in DIR.previous) only if its F1 and no-answer accuracy are not lower.",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    progress_file: Annotated[
        Path | None, _advanced("Write the stage and step count to this JSON file while working.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Fine-tune a QA reader on SQuAD-format data; keeps the epoch with the best dev F1."""
    options = {k: v for k, v in locals().items() if k not in NOT_TRAIN_CONFIG}
    with user_errors():
        config = TrainConfig(**{**options, "data": tuple(data)})
        if promote_if_better is not None and config.dev is None:
            raise ConfigError("--promote-if-better needs --dev: both models are scored on the same dev set")
        served = _served_model(promote_if_better, config.base_model) if promote_if_better else None
        result = _run_training(config, progress_file)
        if result is None:
            return  # under torchrun every rank runs this command; rank 0 reports
        promotion = _promote(config, served, promote_if_better, progress_file) if served else None
    best, r = result.best_dev, result
    human = (
        f"trained {r.train_examples} questions ({r.train_features} windows), {r.epochs} epochs "
        f"in {r.seconds:.0f}s: dev EM {best['exact_match']:.2f} F1 {best['f1']:.2f} -> {r.output}"
    )
    document = result.to_json()
    if promotion is not None:
        document["promotion"] = promotion.to_json()
        verdict = f"installed in {promotion.installed}" if promotion.promoted else "not installed"
        human += f"\n{verdict}: {promotion.reason}"
        if promotion.promoted:
            human += "; send /reload to the bot (or restart it) to serve it"
    _emit(document, as_json, human)


def _served_model(target: Path, base_model: str) -> Path:
    """The model served from ``target``: itself when it holds one, else the base model trained from."""
    from finetune.models import resolve_model_ref  # noqa: PLC0415

    if (target / "config.json").is_file():
        return target
    served = Path(resolve_model_ref(base_model))
    if not (served / "config.json").is_file():
        raise ConfigError(
            f"--promote-if-better {target} holds no model, and --base-model {base_model} is no local model"
        )
    return served


def _promote(config: TrainConfig, served: Path, target: Path, progress_file: Path | None) -> Any:
    """Score the trained output against the served model; install it if it is not worse."""
    from finetune.promote import ProgressFile, promote_if_better  # noqa: PLC0415 - loads torch

    progress = ProgressFile(progress_file).stage_callback() if progress_file else None
    with contextlib.redirect_stdout(sys.stderr):
        return promote_if_better(config.output, served, target, config.dev, progress=progress)


def _run_training(config: TrainConfig, progress_file: Path | None = None) -> Any:
    """Train; the result on the main process, None on the others (torchrun)."""
    from finetune.train import is_main_process  # noqa: PLC0415 - keeps --help fast (no torch import)
    from finetune.train import train as run_training  # noqa: PLC0415

    quiet_model_loading()
    on_step = None
    if progress_file is not None:
        from finetune.promote import ProgressFile  # noqa: PLC0415

        tracker = ProgressFile(progress_file)
        tracker.update(stage="training", force=True)
        on_step = lambda step, total: tracker.update(stage="training", step=step, total=total)  # noqa: E731
    # Trainer's progress bar and log lines print to stdout; stdout is kept for the result.
    with contextlib.redirect_stdout(sys.stderr):
        result = run_training(config, on_step)
    return result if is_main_process() else None


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model directory.")],
    data: Annotated[Path, typer.Option(help="SQuAD file to score against.")],
    limit: Annotated[int | None, typer.Option(help="Score a seeded random sample of N questions.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Write id -> answer JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.", rich_help_panel=ADVANCED)] = 64,
    device: Annotated[str | None, typer.Option(help="cpu, cuda... (default: best available).")] = None,
    max_seq_length: Annotated[
        int | None,
        typer.Option(help="Tokens per window [default: the model's].", rich_help_panel=ADVANCED),
    ] = None,
    doc_stride: Annotated[
        int | None, typer.Option(help="Window overlap [default: the model's].", rich_help_panel=ADVANCED)
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for --limit sampling.", rich_help_panel=ADVANCED)
    ] = SEED_DEFAULT,
    precision: Annotated[
        str, typer.Option(help="auto, fp32, bf16 or fp16.", rich_help_panel=ADVANCED)
    ] = "auto",
    backend: Annotated[
        str,
        typer.Option(envvar="HELPLINE_READER_BACKEND", help="auto, torch, onnx, onnx-int8 or openvino."),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Score a model with the official SQuAD metric (EM, F1; HasAns/NoAns on v2 data)."""
    from finetune.commands import evaluate_model  # noqa: PLC0415 - keeps --help fast

    with user_errors():
        scores = evaluate_model(
            model, data, limit=limit, predictions_out=predictions, batch_size=batch_size, device=device,
            max_seq_length=max_seq_length, doc_stride=doc_stride, seed=seed, precision=precision,
            backend=backend,
        )  # fmt: skip
    human = f"EM {scores.exact_match:.2f}  F1 {scores.f1:.2f}  over {scores.n} questions ({scores.backend})"
    split_scores = scores.breakdown
    if "HasAns_f1" in split_scores:
        human += f"  (HasAns F1 {split_scores['HasAns_f1']:.2f}, NoAns F1 {split_scores['NoAns_f1']:.2f})"
    _emit(scores.to_json(), as_json, human)


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help="Model directory.")],
    question: Annotated[str, typer.Option(help="The question.")],
    context: Annotated[str | None, typer.Option(help="The passage to read.")] = None,
    context_file: Annotated[Path | None, typer.Option(help="Read the passage from a file.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda... (default: best available).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Answer one question from one passage."""
    from finetune.reader import Reader  # noqa: PLC0415 - keeps --help fast

    with user_errors():
        if (context is None) == (context_file is None):
            raise ConfigError("give exactly one of --context or --context-file")
        text = context if context is not None else _read_text(context_file)
        reader = Reader(model, device=device)
        reader.warm_up()
        (reading,) = reader.read(question, [text])
    best = reading.best
    document = {
        "answer": best.text if best else None,
        "start": best.start if best else None,
        "end": best.end if best else None,
        "score": best.score if best else None,
        "probability": best.probability if best else None,
    }
    human = (
        f"{best.text}  (p={best.probability:.2f}, chars {best.start}-{best.end})" if best else "(no answer)"
    )
    _emit(document, as_json, human)


def _read_text(path: Path) -> str:
    """A UTF-8 text file's content.

    Raises:
        FileAccessError: it cannot be read, or is not UTF-8 (the message names it).
    """
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FileAccessError(f"{path}: cannot read it as UTF-8 text ({e})") from None


@app.command()
def split(
    file: Annotated[Path, typer.Argument(help="SQuAD file (.json or .json.gz).")],
    dev_articles: Annotated[int, typer.Option(help="Articles (chosen at random) to hold out as dev.")],
    train_out: Annotated[Path, typer.Option(help="Where to write the training part (.json or .json.gz).")],
    dev_out: Annotated[Path, typer.Option(help="Where to write the dev part (.json or .json.gz).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = SEED_DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Split a SQuAD file by article into train and dev files (a held-out general dev set)."""
    from finetune.commands import split_file  # noqa: PLC0415

    with user_errors():
        summary = split_file(file, dev_articles, seed, train_out, dev_out)
    human = (
        f"train: {summary.train_articles} articles, {summary.train_questions} questions -> {train_out}\n"
        f"dev: {summary.dev_articles} articles, {summary.dev_questions} questions -> {dev_out}"
    )
    _emit(summary.to_json(), as_json, human)


@app.command("export")
def export_command(
    model: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Model directory (a `finetune train` output).")
    ],
    backend: Annotated[
        list[str] | None,
        typer.Option(help="onnx (fp32) or onnx-int8; repeat for both [default: both]."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the exports [default: MODEL/onnx; see HELPLINE_READER_EXPORT_DIR]."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the exports (exit 1 when missing, stale or corrupt).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Build the ONNX exports the fast reader backends serve, tied to the model's weights (once per model).

    An export that is there, complete and of the current weights is kept; a stale or corrupt one is
    rebuilt (with --check: reported).
    """
    from finetune.export import VARIANTS, check_export, ensure_export  # noqa: PLC0415 - torch.onnx

    quiet_model_loading()
    wanted = backend or list(VARIANTS)
    with user_errors():
        unknown = [b for b in wanted if b not in VARIANTS]
        if unknown:
            raise ConfigError(f"--backend must be one of {', '.join(VARIANTS)}, got {unknown}")
        exports = [check_export(model, b, out) if check else ensure_export(model, b, out) for b in wanted]
    rows = [
        {"backend": e.meta.backend, "path": str(e.path), "built": e.built,
         "weights_sha256": e.meta.weights_sha256, "bytes": e.path.stat().st_size}
        for e in exports
    ]  # fmt: skip
    human = "\n".join(
        f"{r['backend']}: {r['path']} ({r['bytes'] / 1e6:.1f} MB, {'built' if r['built'] else 'up to date'})"
        for r in rows
    )
    _emit({"exports": rows}, as_json, human)


if __name__ == "__main__":
    app()

"""Training throughput of ``finetune train``'s path against the tutorial's method, on the same data.

Both train the same model (the base model plus a fresh QA head) with AdamW on the same seeded random
sample of SQuAD questions, with the same batch size, for one pass over their features; only the
method differs:

- ours: ``finetune train``'s own pieces: sliding windows (``--max-seq-length`` 384, stride 128), the
  length-grouped sampler and dynamic padding of the Trainer that ``finetune.train`` builds, and its
  mixed precision (``auto``: bf16 autocast on bf16 CPUs and GPUs);
- tutorial: one feature per question, padded (and truncated) to 512 tokens, fp32, random order.

A feature is one model input row (ours can cut a long context into several, the tutorial never does),
so it also reports questions/s. One warm-up batch per method is not timed; on a CPU the two methods
take turns batch by batch so that both meet the same load on a shared machine. Prints a table, then
one JSON line.

Usage:
    .venv/bin/python bench/bench_train.py                          # 64 questions (a few minutes on CPU)
    .venv/bin/python bench/bench_train.py --examples 48 --batch-size 8 --threads 1   # a shared CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from finetune.config import TrainConfig
from finetune.features import WindowSettings, prepare_train_features
from finetune.inference import autocast_context
from finetune.models import resolve_model_ref
from finetune.reader_config import ReaderConfig
from finetune.squad import SquadExample, load_squad, sample_examples
from finetune.train import build_trainer, describe_hardware, resolve_precision

logger = logging.getLogger("bench_train")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-train-v1.1.json.gz"
TUTORIAL_LENGTH = 512  # the tutorial pads every question to BERT's full length
LEARNING_RATE = 3e-5
SEED = 42


@dataclass(frozen=True)
class Run:
    """One method's timed pass."""

    method: str
    questions: int
    features: int
    tokens: int  # non-padding tokens the model saw
    padded_tokens: int  # tokens including padding
    seconds: float

    @property
    def features_per_s(self) -> float:
        return self.features / self.seconds

    @property
    def questions_per_s(self) -> float:
        return self.questions / self.seconds


def _model(base_model: str) -> Any:
    torch.manual_seed(SEED)
    return AutoModelForQuestionAnswering.from_pretrained(resolve_model_ref(base_model), dtype=torch.float32)


@dataclass
class _Trainee:
    """One method's model, optimizer, batches and autocast dtype, with its time so far."""

    model: Any
    batches: list[dict[str, torch.Tensor]]
    dtype: torch.dtype | None
    optimizer: Any = None
    seconds: float = 0.0

    def step(self, batch: dict[str, torch.Tensor], device: torch.device) -> None:
        """One training step: forward, backward, AdamW."""
        with autocast_context(device, self.dtype):
            loss = self.model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()}).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def timed(self, batches: list[dict[str, torch.Tensor]], device: torch.device) -> None:
        """Train on ``batches`` and add the wall time (GPU work included) to ``seconds``."""
        _sync(device)
        started = time.perf_counter()
        for batch in batches:
            self.step(batch, device)
        _sync(device)
        self.seconds += time.perf_counter() - started


def timed_passes(trainees: list[_Trainee]) -> None:
    """Train each trainee on all its batches; each one's first batch warms up untimed.

    On a CPU the methods take turns batch by batch, so both meet the same load from other processes (a
    shared machine), which would otherwise favour whichever ran at the quieter moment. On a GPU each
    runs its whole pass alone: syncing after every step would stop the CPU from queueing the next
    step's kernels while the GPU works, which is how training really runs.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for trainee in trainees:
        trainee.model.to(device).train()
        trainee.optimizer = torch.optim.AdamW(trainee.model.parameters(), lr=LEARNING_RATE)
        trainee.step(trainee.batches[0], device)
    if device.type == "cuda":
        for trainee in trainees:
            trainee.timed(trainee.batches[1:], device)
        return
    for index in range(1, max(len(t.batches) for t in trainees)):
        for trainee in trainees:
            if index < len(trainee.batches):
                trainee.timed([trainee.batches[index]], device)
        print(f"batch {index}: " + ", ".join(f"{t.seconds:.1f}s" for t in trainees), file=sys.stderr)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _counted(
    batches: Iterable[dict[str, torch.Tensor]],
) -> tuple[list[dict[str, torch.Tensor]], int, int, int]:
    """Materialise batches; count features, real tokens and padded tokens after the warm-up batch."""
    batches = list(batches)
    timed = batches[1:]
    features = sum(len(b["input_ids"]) for b in timed)
    tokens = sum(int(b["attention_mask"].sum()) for b in timed)
    padded = sum(b["input_ids"].numel() for b in timed)
    return batches, features, tokens, padded


def prepare_ours(
    examples: tuple[SquadExample, ...], args: argparse.Namespace, workdir: Path
) -> tuple[Run, _Trainee]:
    """Our path: windows, the Trainer's length-grouped dataloader with dynamic padding, auto precision."""
    config = TrainConfig(
        data=(args.data,), output=workdir / "model", base_model=args.base_model, batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, doc_stride=args.doc_stride, dataloader_workers=0, seed=SEED,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_ref(args.base_model))
    features = prepare_train_features(
        tokenizer, examples, WindowSettings(args.max_seq_length, args.doc_stride)
    )
    model = _model(args.base_model)
    trainer = build_trainer(config, model, tokenizer, features, dev_set=_NoDev())
    batches, n_features, tokens, padded = _counted(trainer.get_train_dataloader())
    precision = resolve_precision("auto")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    # Questions in the timed batches, pro rata (the warm-up batch is a random slice of the windows).
    timed_questions = round(len(examples) * n_features / len(features))
    run = Run(f"ours ({precision}, dynamic)", timed_questions, n_features, tokens, padded, 0.0)
    return run, _Trainee(model, batches, dtype)


class _NoDev:
    """Stands in for the dev set: the benchmark never evaluates."""

    windows: tuple = ()


def prepare_tutorial(examples: tuple[SquadExample, ...], args: argparse.Namespace) -> tuple[Run, _Trainee]:
    """The tutorial's method: one row per question, padded/truncated to 512, fp32, random order."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_ref(args.base_model))
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(SEED)).tolist()
    batches = []
    for begin in range(0, len(order), args.batch_size):
        chunk = [examples[i] for i in order[begin : begin + args.batch_size]]
        encoded = tokenizer(
            [e.question for e in chunk],
            [e.context for e in chunk],
            truncation=True,
            max_length=TUTORIAL_LENGTH,
            padding="max_length",
            return_tensors="pt",
        )
        # The labels do not change the cost of a step; zeros stand in for the tutorial's (wrong) ones.
        encoded["start_positions"] = torch.zeros(len(chunk), dtype=torch.long)
        encoded["end_positions"] = torch.zeros(len(chunk), dtype=torch.long)
        batches.append(dict(encoded))
    batches, n_features, tokens, padded = _counted(batches)
    run = Run("tutorial (fp32, pad 512)", n_features, n_features, tokens, padded, 0.0)
    return run, _Trainee(_model(args.base_model), batches, dtype=None)


def _table(runs: list[Run]) -> str:
    header = (
        f"{'method':<26} {'questions':>9} {'features':>8} {'padding':>8} {'seconds':>8} {'features/s':>10}"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        padding = 1 - run.tokens / run.padded_tokens
        lines.append(
            f"{run.method:<26} {run.questions:>9} {run.features:>8} {padding:>8.0%} {run.seconds:>8.1f} "
            f"{run.features_per_s:>10.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SQuAD file (.json or .json.gz)")
    parser.add_argument("--examples", type=int, default=64, help="questions in the seeded random sample")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--max-seq-length", type=int, default=ReaderConfig.max_seq_length)
    parser.add_argument("--doc-stride", type=int, default=ReaderConfig.doc_stride)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 keeps a shared CPU's load from stalling)",
    )
    args = parser.parse_args()
    if args.threads:
        # With other processes on the cores, a multi-threaded op waits for its slowest (descheduled)
        # thread at every barrier; one thread per process keeps timings meaningful on a shared machine.
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.examples < 2 * args.batch_size:
        parser.error("--examples must be at least twice --batch-size (one batch warms up)")

    examples = sample_examples(load_squad([args.data]).examples, args.examples, SEED)
    print(f"{len(examples)} questions from {args.data} on {describe_hardware()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as workdir:
        ours, ours_trainee = prepare_ours(examples, args, Path(workdir))
    tutorial, tutorial_trainee = prepare_tutorial(examples, args)
    timed_passes([ours_trainee, tutorial_trainee])
    ours = dataclasses.replace(ours, seconds=ours_trainee.seconds)
    tutorial = dataclasses.replace(tutorial, seconds=tutorial_trainee.seconds)
    print(_table([ours, tutorial]))
    ratio = ours.features_per_s / tutorial.features_per_s
    question_ratio = ours.questions_per_s / tutorial.questions_per_s
    print(f"speed-up: {ratio:.2f}x features/s, {question_ratio:.2f}x questions/s (goal >= 3x)")
    print(json.dumps({
        "examples": len(examples), "batch_size": args.batch_size, "hardware": describe_hardware(),
        "threads": torch.get_num_threads(),
        "ours_features_per_s": round(ours.features_per_s, 3),
        "tutorial_features_per_s": round(tutorial.features_per_s, 3),
        "ratio": round(ratio, 2), "questions_ratio": round(question_ratio, 2),
        "ours_padding": round(1 - ours.tokens / ours.padded_tokens, 3),
        "tutorial_padding": round(1 - tutorial.tokens / tutorial.padded_tokens, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

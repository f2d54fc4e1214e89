"""`make demo`: the whole job on the bundled defaults, offline, no token.

Indexes the bundled documents, makes sure a reader exists, answers sample member questions through
the same engine the bot uses (printed as a member would see them), runs an admin's continual-learning
round, and says how to start the Telegram bot.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from bot.cli import quiet_model_loading
from bot.config import Settings
from bot.engine import Answer, AnswerEngine
from retrieval import build_index

console = Console()

SAMPLE_QUESTIONS = (
    "what is a normal a1c level for someone without diabetes?",
    "my son was diagnosed with T1D, what causes it?",
    "How can I lower my risk of type 2 diabetes?",
    "what are the symptoms of low blood sugar",
    "can diabetes damage my kidneys?",
    "What is brittle diabetes?",  # the welcome message's example: a definition question
)
# Nothing in the documents answers this: the bot must say so instead of inventing an answer.
UNANSWERABLE_QUESTION = "Which football team won the 1998 world cup?"
# How a direct answer was found (bot.engine.Places), under its panel.
BASIS_NOTES = {"definition": " · from a defining sentence", "section": " · from the document's own question"}


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo reads and writes; `var/` keeps everything out of the repository's tracked files."""

    work_dir: Path = Path("var/demo")
    # The continual-learning round: a short run from the served reader on the diabetes train set.
    round_train_data: Path = Path("data/diabetes-qa/train.json")
    round_dev_data: Path = Path("data/diabetes-qa/dev.json")
    round_examples: int = 48
    round_max_seq_length: int = 256


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def run_command(args: list[str]) -> None:
    """Run an admin command as an admin would, showing it first; stop the demo if it fails."""
    console.print(f"[dim]$ {shlex.join(args)}")
    result = subprocess.run(args)
    if result.returncode != 0:
        console.print(f"[red]demo: `{shlex.join(args)}` failed (exit {result.returncode})")
        raise SystemExit(1)


def render(question: str, answer: Answer, threshold: float) -> Panel:
    """The reply as a member sees it in Telegram, as plain text; under it, for the admin watching, the
    confidence, and on a decline the confidence an answer needs (a decline at 0.82 reads as a
    contradiction without it)."""
    lines = []
    if answer.text is not None:
        lines.append(f"[bold]{answer.text}[/bold]")
        if answer.quote:
            lines.append(f"\n“{answer.quote}”")
        lines.append(f"\nSource: {answer.title} {answer.source or ''}")
    else:
        lines.append("I could not find an answer to that in our documents.")
        if answer.passage is not None:
            lines.append(f"The closest page is: {answer.title} {answer.source or ''}")
    basis = BASIS_NOTES.get(answer.basis, "")
    below = f" < {threshold:.2f} needed" if answer.text is None else ""
    footer = (
        f"confidence {answer.confidence:.2f}{below}{basis} · "
        f"retrieval {answer.timings.retrieval_ms:.0f} ms · reading {answer.timings.reading_ms:.0f} ms"
    )
    body = Text.from_markup("\n".join(lines))
    # As wide as the reply, but never so narrow that rich cuts the footer short.
    width = min(console.width, max(console.measure(body).maximum, len(footer)) + 6)
    return Panel(body, title=f"[yellow]Member: {question}", subtitle=footer, width=width)


def ensure_reader(settings: Settings, config: DemoConfig) -> Path:
    """The reader to serve; trains a small one on the bundled data only if none is there."""
    model_dir = settings.served_model_dir()
    if (model_dir / "config.json").is_file():
        console.print(f"Serving the reader in [bold]{model_dir}[/bold]")
        return model_dir
    console.print("[yellow]No reader found: training a small one on the bundled diabetes data.")
    run_command(_train_command(settings.model_dir, "minilm", config))
    return settings.model_dir


def _train_command(
    output: Path, base: Path | str, config: DemoConfig, *, overwrite: bool = False
) -> list[str]:
    """The admin's `finetune train` command; ``overwrite`` for the demo's own round (a second `make demo`
    replaces the model of the first)."""
    return [
        str(Path(sys.executable).parent / "finetune"),
        "train",
        "--data",
        str(config.round_train_data),
        "--dev",
        str(config.round_dev_data),
        "--output",
        str(output),
        "--base-model",
        str(base),
        "--epochs",
        "1",
        "--max-train-examples",
        str(config.round_examples),
        "--max-seq-length",
        str(config.round_max_seq_length),
        *(["--overwrite"] if overwrite else []),
    ]


def ask_all(engine: AnswerEngine, questions: tuple[str, ...]) -> None:
    for question in questions:
        console.print(render(question, engine.answer(question), engine.answer_threshold))


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    quiet_model_loading()  # also for the `finetune train` it runs: the environment is inherited
    config = DemoConfig()
    settings = Settings()

    engine = AnswerEngine.from_settings(settings)

    step("1. Index the bundled documents (BM25 + passage vectors for hybrid search)")
    report = build_index(settings.docs_dir, settings.index_dir, encoder=engine.encoder)
    console.print(
        f"{report.documents} documents -> {report.passages} passages in {report.seconds:.1f} s "
        f"({len(report.skipped)} skipped) -> {settings.index_dir}"
    )

    step("2. The reader")
    model_dir = ensure_reader(settings, config)

    step("3. Members ask")
    started = time.perf_counter()
    engine.warm_up()
    console.print(f"[dim]model and index loaded in {time.perf_counter() - started:.1f} s")
    ask_all(engine, SAMPLE_QUESTIONS + (UNANSWERABLE_QUESTION,))

    step("4. An admin's continual-learning round")
    round_dir = config.work_dir / "model"
    console.print(
        f"New annotations arrive; the admin fine-tunes the served reader ({model_dir}) on them "
        f"(a short run here: {config.round_examples} questions), then the bot serves the new model."
    )
    run_command(_train_command(round_dir, model_dir, config, overwrite=True))
    engine.reload(model_dir=round_dir)
    console.print(
        f"Serving the new reader from [bold]{round_dir}[/bold] (in Telegram: /reload). It has no calibrated "
        f"confidence yet, so it answers only when the reader alone is very sure; an admin runs "
        f"`bot calibrate --model-dir {round_dir}` (a few minutes) before serving it for real."
    )
    ask_all(engine, SAMPLE_QUESTIONS[:2])

    step("5. Start the Telegram bot")
    console.print(
        "Set TELEGRAM_BOT_TOKEN (from @BotFather) and HELPLINE_ADMIN_IDS in .env, then run:\n"
        "  [bold].venv/bin/bot run[/bold]\n"
        "Admins refresh the documents with `retrieval index data/docs --index var/index` or /reindex."
    )


if __name__ == "__main__":
    main()

"""``bot``: run the Telegram helpline, or ask it questions from the shell.

Settings come from the environment or ``.env`` (see ARCHITECTURE.md); options given here override them.

Start-up policy for the index: when ``HELPLINE_INDEX_DIR`` is the default (``var/index``), does not
exist yet and ``HELPLINE_DOCS_DIR`` does, the index is built from the documents first, so that a fresh
checkout answers with the bundled documents out of the box. An index that exists but does not load,
or a custom index path that is missing, is never rebuilt behind the admin's back: the command stops
and says which ``retrieval index`` command to run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer
from pydantic import ValidationError

from bot import __version__
from bot.answer import Answer
from bot.calibration import DEFAULT_CALIBRATION_DATA, DEFAULT_TARGET_PRECISION, CalibrationError
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.errors import BadInputError, ModelDirError
from bot.store import Store
from finetune.errors import FinetuneError
from retrieval import EncoderError, IndexLoadError, build_index

logger = logging.getLogger(__name__)

app = typer.Typer(help="The Helpline Telegram bot and its answer pipeline.", no_args_is_help=True)

# What @BotFather hands out: the bot's numeric id, a colon, then letters, digits, '_' and '-'.
TOKEN_SHAPE = re.compile(r"^\d+:[\w-]+$")
ARTIFACTS = "Artifacts (override HELPLINE_* variables)"

ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Reader to serve [HELPLINE_MODEL_DIR].", rich_help_panel=ARTIFACTS),
]
IndexDirOption = Annotated[
    Path | None,
    typer.Option("--index-dir", help="BM25 index [HELPLINE_INDEX_DIR].", rich_help_panel=ARTIFACTS),
]
DocsDirOption = Annotated[
    Path | None,
    typer.Option("--docs-dir", help="Documents for /reindex [HELPLINE_DOCS_DIR].", rich_help_panel=ARTIFACTS),
]
DbOption = Annotated[
    Path | None, typer.Option("--db", help="SQLite database [HELPLINE_DB].", rich_help_panel=ARTIFACTS)
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bot {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The Helpline Telegram bot and its answer pipeline."""
    quiet_model_loading()


def quiet_model_loading() -> None:
    """No "Loading weights" bar when the reader loads: transformers reads this before its first import."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    loaded = sys.modules.get("transformers.utils.logging")
    if loaded is not None:  # imported already (in-process callers): the variable was read at import
        loaded.disable_progress_bar()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def load_settings(**overrides: Path | None) -> Settings:
    """Settings from the environment and ``.env``, with the non-None command-line ``overrides`` on top.

    Raises:
        typer.Exit: a variable has a bad value (the message names it).
    """
    try:
        settings = Settings()
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise _fail(f"bad setting {name}: {first['msg']}") from None
    given = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=given)


def check_token(settings: Settings) -> None:
    """Stop with a fix-it message when the token is missing or not shaped like a bot token."""
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        raise _fail("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token in .env")
    if not TOKEN_SHAPE.match(settings.telegram_bot_token.get_secret_value()):
        raise _fail("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:characters, from @BotFather)")


def check_model(settings: Settings) -> None:
    """Stop when a configured ``model_dir`` holds no model, or the default falls back to a missing reader."""
    try:
        served = settings.served_model_dir()
    except ModelDirError as e:
        raise _fail(str(e)) from None
    if not (served / "config.json").is_file():
        raise _fail(
            f"no reader model in {settings.model_dir} (HELPLINE_MODEL_DIR or --model-dir) nor in {served}: "
            f"train one with `finetune train --data FILE --output {settings.model_dir}`, or run `make reader`"
        )


def ensure_index(settings: Settings, engine: AnswerEngine) -> None:
    """Build the default index from the documents when it does not exist yet (see the module docstring),
    with the engine's passage encoder in hybrid or dense mode."""
    default = Settings.model_fields["index_dir"].default
    if settings.index_dir.exists() or settings.index_dir != default or not settings.docs_dir.is_dir():
        return
    typer.echo(f"no index yet: building {settings.index_dir} from {settings.docs_dir}...", err=True)
    report = build_index(settings.docs_dir, settings.index_dir, encoder=engine.encoder)
    typer.echo(f"indexed {report.documents} documents, {report.passages} passages", err=True)


def check_webhook_url(url: str) -> None:
    """Stop unless ``url`` is an absolute http(s) URL (Telegram itself wants https)."""
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(f"--webhook-url must be a full URL such as https://bot.example.org/telegram, got {url!r}")


def make_engine(settings: Settings) -> AnswerEngine:
    """The answer engine for ``settings`` (tests replace this to serve a fake reader)."""
    return AnswerEngine.from_settings(settings)


def ready_engine(settings: Settings) -> AnswerEngine:
    """Check the model, make sure there is an index, load both; stop with a fix-it message on failure."""
    check_model(settings)
    engine = make_engine(settings)
    try:
        ensure_index(settings, engine)
        engine.warm_up()
    except EncoderError as e:
        raise _fail(f"HELPLINE_ENCODER_DIR: {e}") from None
    except CalibrationError as e:
        raise _fail(f"HELPLINE_MODEL_DIR: {e}") from None
    except IndexLoadError as e:
        raise _fail(f"HELPLINE_INDEX_DIR: {e}") from None
    except ModelDirError as e:
        raise _fail(str(e)) from None
    except FinetuneError as e:  # the reader's own user errors (a broken model, a bad reader_config.json)
        raise _fail(f"cannot load the reader (HELPLINE_MODEL_DIR): {e}") from None
    return engine


@app.command()
def run(
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Public HTTPS URL for webhook mode (default: long polling).", show_default=False),
    ] = None,
    model_dir: ModelDirOption = None,
    index_dir: IndexDirOption = None,
    docs_dir: DocsDirOption = None,
    db: DbOption = None,
) -> None:
    """Run the Telegram bot until stopped (Ctrl-C or SIGTERM)."""
    # Imported here: telegram (and its HTTP stack) is only needed to run the bot, not for `bot ask`.
    from bot.app import StartupError, build_application, check_telegram, configure_logging, run_bot  # noqa: PLC0415

    settings = load_settings(model_dir=model_dir, index_dir=index_dir, docs_dir=docs_dir, db_path=db)
    check_token(settings)
    try:
        settings.file_base_url()  # admins' documents are downloaded from there
    except ValueError as e:
        raise _fail(str(e)) from None
    if webhook_url is not None:
        check_webhook_url(webhook_url)
    configure_logging(settings)
    try:
        username = check_telegram(settings)  # before the model loads: a wrong token fails in a second
    except StartupError as e:
        raise _fail(str(e)) from None
    logger.info("token accepted: this is @%s", username)
    engine = ready_engine(settings)
    logger.info("reader backend: %s (HELPLINE_READER_BACKEND=%s)", engine.backend, settings.reader_backend)
    try:
        store = Store.from_settings(settings)
    except (sqlite3.Error, OSError) as e:
        raise _fail(f"cannot open the database {settings.db_path} (HELPLINE_DB): {e}") from None
    try:
        run_bot(build_application(settings, engine, store), settings, webhook_url)
    finally:
        store.close()


def answer_record(answer: Answer, backend: str) -> dict[str, Any]:
    """The ``bot ask --json`` object for one answer (ARCHITECTURE.md, "Command contracts").

    Args:
        answer: the engine's answer.
        backend: the reader backend that read it (``AnswerEngine.backend``).
    """
    return {
        "answer": answer.text,
        "confidence": round(answer.confidence, 4),
        "passage_id": answer.passage.id if answer.passage else None,
        "passage": answer.passage.text if answer.passage else None,
        "title": answer.title,
        "source": answer.source,
        "latency_ms": round(answer.timings.total_ms, 2),
        "passages_read": answer.passages_read,
        "passages_rechecked": answer.passages_rechecked,
        "backend": backend,
        "basis": answer.basis,
    }


def answer_text(answer: Answer) -> str:
    """A human-readable answer for the terminal."""
    source = f"{answer.title} <{answer.source}>" if answer.source else (answer.title or "")
    if not answer.answered:
        closest = f"\n  closest passage: {source}" if answer.passage else ""
        return f"(no answer in the documents; confidence {answer.confidence:.2f}){closest}"
    quote = f"\n  “{answer.quote}”" if answer.quote else ""
    return (
        f"{answer.text}{quote}\n  source: {source}\n"
        f"  confidence {answer.confidence:.2f}, {answer.timings.total_ms:.0f} ms"
    )


def read_questions(path: Path) -> list[str]:
    """One question a line, or JSON Lines whose objects hold a ``"question"``; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text (one question a line)") from None
    return [_question_of(line.strip(), path, number) for number, line in enumerate(lines, 1) if line.strip()]


def _question_of(line: str, path: Path, number: int) -> str:
    """A line's question: the line itself, or the ``"question"`` of a JSON object line."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise _fail(f"{path}:{number}: a line that starts with '{{' must be a JSON object ({e})") from None
    question = record.get("question") if isinstance(record, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise _fail(f'{path}:{number}: the JSON object has no "question" text')
    return question.strip()


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question.", show_default=False)] = None,
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions", exists=True, dir_okay=False,
            help='A file of questions: one a line, or JSON Lines with a "question" each.',
        ),  # fmt: skip
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (one object a line with --questions).")
    ] = False,
    model_dir: ModelDirOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Answer questions from the documents, without Telegram (the model loads once)."""
    if (question is None) == (questions is None):
        raise _fail("give either a QUESTION or --questions FILE")
    batch = [question.strip()] if question is not None else read_questions(questions)
    if not all(batch):
        raise _fail("the question is empty")
    engine = ready_engine(load_settings(model_dir=model_dir, index_dir=index_dir))
    for text in batch:
        answer = engine.answer(text)
        record = answer_record(answer, engine.backend)
        typer.echo(json.dumps(record, ensure_ascii=False) if as_json else answer_text(answer))
        sys.stdout.flush()  # a long --questions run shows its progress line by line


# --- calibrate ---------------------------------------------------------------------------------


@app.command()
def calibrate(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="SQuAD v2 questions held out from training, unanswerable ones included (repeat the "
            "option for several files; default: data/diabetes-qa/dev.json and calib.json).",
        ),
    ] = None,
    target_precision: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Share of answers that must be right (out of fold).")
    ] = DEFAULT_TARGET_PRECISION,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as one JSON document.")
    ] = False,
    model_dir: ModelDirOption = None,
    index_dir: IndexDirOption = None,
    docs_dir: DocsDirOption = None,
) -> None:
    """Fit the served model's calibrated confidence on held-out questions; writes its calibration.json.

    Every question is asked as the bot asks it (the index of HELPLINE_INDEX_DIR, or a fresh one of the
    documents when there is none yet); run it after `finetune train`, then /reload.
    """
    from bot.tuning import read_all, tune  # noqa: PLC0415 - loads scikit-learn and the model

    data = data or list(DEFAULT_CALIBRATION_DATA)
    missing = [str(path) for path in data if not path.is_file()]
    if missing:
        raise _fail(f"no questions file {', '.join(missing)} (run from the repository root, or pass --data)")
    settings = load_settings(model_dir=model_dir, index_dir=index_dir, docs_dir=docs_dir)
    check_model(settings)
    served = settings.served_model_dir()
    index = settings.index_dir if settings.index_dir.exists() else None
    try:
        observed, seconds = read_all(served, index, data, settings.docs_dir)
    except (FinetuneError, IndexLoadError, EncoderError) as e:
        raise _fail(str(e)) from None
    fitted_on = f"{', '.join(map(str, data))} ({len(observed)} questions)"
    calibration, report = tune(observed, target_precision, seconds, fitted_on)
    report["written"] = str(calibration.save(served))
    if as_json:
        typer.echo(json.dumps(report))
        return
    chosen, held = report["chosen"], report["held_out"]
    oof = chosen["coverage"]
    typer.echo(
        f"k={chosen['k']}, threshold {chosen['threshold']:.3f}: out of fold {oof['right']:.1%} of "
        f"answerable questions answered right, {oof['precision']:.1%} of answers right, "
        f"{oof['declined_unanswerable']:.1%} of unanswerable declined; held out by document: "
        f"{held['right']:.1%} / {held['precision']:.1%} / {held['declined_unanswerable']:.1%}\n"
        f"wrote {report['written']} (set HELPLINE_TOP_K={chosen['k']} to read as many passages)"
    )


# --- export-feedback ---------------------------------------------------------------------------


@app.command("export-feedback")
def export_feedback_command(
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="The SQuAD v2 file to write.")],
    since: Annotated[
        str | None,
        typer.Option(help="Only questions asked on or after this ISO date/time (UTC).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Export questions voted "not helpful" and unanswered ones as SQuAD v2, for correcting and retraining.

    Each retrieved passage becomes a paragraph; the bot's answer is pre-filled where it came from,
    every other entry is marked unanswerable. Correct the spans, check the file with
    `finetune check FILE`, then add it to `finetune train --data`.
    """
    from bot.feedback import export_feedback, parse_since  # noqa: PLC0415 - only this command needs it

    settings = load_settings(db_path=db)
    try:
        since_key = parse_since(since) if since is not None else None
    except BadInputError as e:
        raise _fail(str(e)) from None
    if not settings.db_path.is_file():
        raise _fail(
            f"no database at {settings.db_path} (HELPLINE_DB or --db): the bot has logged nothing yet"
        )
    try:
        store = Store.from_settings(settings)
        try:
            report = export_feedback(store, out, since_key)
        finally:
            store.close()
    except (sqlite3.Error, OSError) as e:
        raise _fail(f"cannot export from {settings.db_path} to {out}: {e}") from None
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
    typer.echo(
        f"wrote {report.questions} questions over {report.contexts} passages to {report.output}"
        f" ({report.skipped} skipped: no stored text or no passages)",
        err=True,
    )


# --- console -----------------------------------------------------------------------------------


@app.command()
def console(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [HELPLINE_CONSOLE_HOST, default 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [HELPLINE_CONSOLE_PORT, default 8765].")] = None,
    new_token: Annotated[
        bool,
        typer.Option("--new-token", help="Replace the generated admin token with a new one (printed once)."),
    ] = False,
    docs_dir: DocsDirOption = None,
    index_dir: IndexDirOption = None,
    model_dir: ModelDirOption = None,
    db: DbOption = None,
) -> None:
    """Run the admin web console: annotate documents, review members' feedback, export, retrain.

    Every page and API call needs the admin token (HELPLINE_CONSOLE_TOKEN; when unset, one is generated
    on first start and printed once).
    """
    import uvicorn  # noqa: PLC0415 - only this command serves HTTP

    from bot.console import create_app, open_console  # noqa: PLC0415

    settings = load_settings(docs_dir=docs_dir, index_dir=index_dir, model_dir=model_dir, db_path=db)
    host = host or settings.console_host
    port = settings.console_port if port is None else port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        admin, token = open_console(settings, new_token=new_token)
    except (sqlite3.Error, OSError) as e:
        raise _fail(f"cannot open the database {settings.db_path} (HELPLINE_DB): {e}") from None
    if token.generated:
        typer.echo(f"admin token (shown once, keep it safe): {token.generated}", err=True)
    elif token.source == "database":
        typer.echo(
            "using the admin token generated earlier (`bot console --new-token` makes a new one)", err=True
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}: put the console behind HTTPS before exposing it", err=True)
    typer.echo(
        f"console at http://{host}:{port}/ (documents {settings.docs_dir}, database {settings.db_path})",
        err=True,
    )
    try:
        uvicorn.run(create_app(admin), host=host, port=port, log_level="warning")
    finally:
        admin.close()


@app.command("export-annotations")
def export_annotations_command(
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="The SQuAD v2.0 file to write.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    docs_dir: DocsDirOption = None,
    db: DbOption = None,
) -> None:
    """Export the console's annotations and reviewed feedback as SQuAD v2.0 (what GET /api/export returns).

    `finetune check FILE` accepts it; add it to `finetune train --data`.
    """
    from bot.console.export import write_export  # noqa: PLC0415
    from bot.console.records import ConsoleRecords  # noqa: PLC0415

    settings = load_settings(docs_dir=docs_dir, db_path=db)
    if not settings.db_path.is_file():
        raise _fail(f"no database at {settings.db_path} (HELPLINE_DB or --db): nothing annotated yet")
    try:
        store = Store.from_settings(settings)
        records = ConsoleRecords(settings.db_path)
        try:
            questions = write_export(records, store, out)
        finally:
            records.close()
            store.close()
    except (sqlite3.Error, OSError) as e:
        raise _fail(f"cannot export from {settings.db_path} to {out}: {e}") from None
    if as_json:
        typer.echo(json.dumps({"output": str(out), "questions": questions}))
    typer.echo(f"wrote {questions} questions to {out}", err=True)

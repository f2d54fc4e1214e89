"""``retrieval``: build, search and inspect the BM25 index (a thin typer app over the library)."""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retrieval import __version__
from retrieval.encoder import SentenceEncoder, dense_encoder, query_encoder_setting
from retrieval.errors import RetrievalError
from retrieval.hybrid import MODES, HybridIndex, HybridSettings
from retrieval.index import BM25Index
from retrieval.passages import ScoredPassage
from retrieval.query_training import QueryEncoderConfig
from retrieval.settings import VARIANTS, IndexSettings
from retrieval.store import build_index, load_index, load_manifest

logger = logging.getLogger(__name__)

app = typer.Typer(help="Build, search and inspect the Helpline BM25 passage index.", no_args_is_help=True)
stderr = Console(stderr=True)

# How much passage text the human-readable search output shows.
PREVIEW_CHARS = 300
TUNING = "Tuning"
# Defaults shown in --help come from the one settings object.
_D = IndexSettings()

IndexOption = Annotated[
    Path, typer.Option("--index", envvar="HELPLINE_INDEX_DIR", help="The index directory.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
EncoderOption = Annotated[
    Path | None,
    typer.Option(
        "--encoder",
        envvar="HELPLINE_ENCODER_DIR",
        help="Sentence encoder folder [the packaged all-MiniLM-L6-v2].",
    ),
]
_H = HybridSettings()
DEFAULT_INDEX = Path("var/index")
_Q = QueryEncoderConfig  # the training options' defaults (dataclass field defaults are class attributes)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retrieval {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False,
) -> None:
    """Build, search and inspect the Helpline BM25 passage index."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn our errors (bad settings values included) into a one-line message and exit status 1."""
    try:
        yield
    except RetrievalError as error:  # anything else is a bug: it keeps its traceback
        raise _fail(str(error)) from None


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr; yields ``update(stage, done, total)``."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr, transient=True, disable=not enabled,
    )  # fmt: skip
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


@app.command()
def index(
    docs_dir: Annotated[Path, typer.Argument(help="Folder of .txt, .md, .html and .pdf files.")],
    index_dir: IndexOption = DEFAULT_INDEX,
    as_json: JsonOption = False,
    target_words: Annotated[
        int | None,
        typer.Option(help=f"Words a passage aims for [{_D.target_words}].", rich_help_panel=TUNING),
    ] = None,
    max_words: Annotated[
        int | None,
        typer.Option(help=f"Words a passage never exceeds [{_D.max_words}].", rich_help_panel=TUNING),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(
            help=f"Sentences shared by consecutive passages [{_D.overlap_sentences}].", rich_help_panel=TUNING
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(help=f"BM25 variant: {', '.join(VARIANTS)} [{_D.variant}].", rich_help_panel=TUNING),
    ] = None,
    k1: Annotated[float | None, typer.Option(help=f"BM25 k1 [{_D.k1}].", rich_help_panel=TUNING)] = None,
    b: Annotated[float | None, typer.Option(help=f"BM25 b [{_D.b}].", rich_help_panel=TUNING)] = None,
    synonyms: Annotated[
        Path | None,
        typer.Option(help="Synonym table [the bundled one].", rich_help_panel=TUNING),
    ] = None,
    dense: Annotated[bool, typer.Option(help="Embed the passages too, for dense and hybrid search.")] = True,
    encoder: EncoderOption = None,
) -> None:
    """(Re)build the index of DOCS_DIR atomically; unreadable files are skipped with a reason."""
    chosen = {
        "target_words": target_words, "max_words": max_words, "overlap_sentences": overlap,
        "variant": variant, "k1": k1, "b": b, "synonyms": synonyms,
    }  # fmt: skip
    with _user_errors():
        settings = dataclasses.replace(_D, **{k: v for k, v in chosen.items() if v is not None})
        embedder = SentenceEncoder(encoder) if dense else None
        with _progress() as update:
            report = build_index(docs_dir, index_dir, settings, progress=update, encoder=embedder)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    typer.echo(
        f"indexed {report.documents} documents into {report.passages} passages in {report.seconds:.2f} s "
        f"({report.reused_documents} unchanged) -> {index_dir}"
    )
    if report.embedding_model:
        model, fresh = report.embedding_model, report.embedded_passages
        typer.echo(f"embedded {fresh} passages with {model} (the others' vectors reused)")
    for dropped in report.dropped:
        typer.echo(f"dropped a block of {dropped.doc_id!r} ({dropped.reason}): {dropped.preview!r}")
    if report.kept_old_index:
        typer.echo(
            f"replaced {index_dir}, an index of a version this program cannot read; "
            f"the old index is kept at {report.kept_old_index}"
        )
    for skipped in report.skipped:
        # Quoted: a file name may hold a newline, which would otherwise forge a line of this output.
        typer.echo(f"skipped {skipped.path!r}: {skipped.reason}")


def _result_json(result: ScoredPassage) -> dict[str, Any]:
    p = result.passage
    return {
        "passage_id": p.id,
        "score": round(result.score, 4),
        "bm25": round(result.bm25, 4),
        "dense": round(result.dense, 4),
        "title": p.title,
        "source": p.source,
        "text": p.text,
    }


def _print_results(query: str, results: list[ScoredPassage]) -> None:
    if not results:
        typer.echo(f"no passage matches {query!r}")
    for rank, result in enumerate(results, 1):
        p = result.passage
        text = p.text if len(p.text) <= PREVIEW_CHARS else p.text[:PREVIEW_CHARS] + "..."
        where = p.source or repr(p.doc_id)  # a file name is quoted: it may hold a newline
        typer.echo(f"{rank}. [{result.score:.2f}] {p.title} ({where})\n   {text}\n")


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="The question to search for.")] = None,
    index_dir: IndexOption = DEFAULT_INDEX,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many passages.")] = 5,
    queries: Annotated[
        Path | None,
        typer.Option(help="File of queries, one a line; prints one JSON array a line."),
    ] = None,
    as_json: JsonOption = False,
    mode: Annotated[
        str,
        typer.Option(
            help=f"Retrieval: auto, {', '.join(MODES)}; auto is hybrid when the index holds passage vectors, "
            "else bm25."
        ),
    ] = "auto",
    encoder: EncoderOption = None,
    query_encoder: Annotated[
        str | None,
        typer.Option(
            envvar="HELPLINE_QUERY_ENCODER_DIR",
            help="Fine-tuned question encoder folder (retrieval train-query-encoder); none: the passage "
            "encoder [none].",
        ),
    ] = None,
) -> None:
    """Search the index for QUERY (or for every line of --queries)."""
    if (query is None) == (queries is None):
        raise _fail("give either a QUERY or --queries FILE (not both)")
    with _user_errors():
        if mode == "auto":
            mode = _H.mode if load_manifest(index_dir).embedding is not None else "bm25"
        settings = HybridSettings(mode=mode)  # type: ignore[arg-type]  # checked by HybridSettings
        loaded = load_index(
            index_dir,
            dense_encoder(encoder, query_encoder_setting(query_encoder)) if mode != "bm25" else None,
            settings,
        )
        if queries is not None:
            _search_file(loaded, queries, top_k)
            return
        results = loaded.search(query or "", top_k)
    if as_json:
        typer.echo(json.dumps([_result_json(r) for r in results], ensure_ascii=False))
    else:
        _print_results(query or "", results)


def _search_file(loaded: BM25Index | HybridIndex, queries: Path, top_k: int) -> None:
    """One JSON array per input line (``[]`` for a blank line, so output line N answers input line N)."""
    try:
        lines = queries.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RetrievalError(f"cannot read queries file {queries}: {error}") from error
    with _progress(enabled=len(lines) > 1) as update:
        for done, line in enumerate(lines, 1):
            results = loaded.search(line, top_k) if line.strip() else []
            sys.stdout.write(json.dumps([_result_json(r) for r in results], ensure_ascii=False) + "\n")
            update("searching", done, len(lines))
    sys.stdout.flush()


def _stats(loaded: BM25Index, index_dir: Path) -> dict[str, Any]:
    manifest = loaded.manifest
    words = [len(p.text.split()) for p in loaded.passages] or [0]
    return {
        "index": str(index_dir),
        "folder": str(index_dir.resolve()),
        "created_at": manifest.created_at,
        "format_version": manifest.format_version,
        "documents": len(manifest.documents),
        "skipped": len(manifest.skipped),
        "passages": len(loaded),
        "vocabulary": loaded.vocabulary_size,
        "words_per_passage": {
            "mean": round(statistics.fmean(words), 1),
            "min": min(words),
            "max": max(words),
        },
        "settings": manifest.settings.to_json(),
        "dropped": len(manifest.dropped),
        "embedding_model": manifest.embedding.model if manifest.embedding else None,
    }


@app.command("train-query-encoder")
def train_query_encoder(
    data: Annotated[
        list[Path], typer.Option("--data", help="SQuAD file of annotated questions; repeat to mix.")
    ],
    output: Annotated[Path, typer.Option(help="Query encoder folder to write (atomically, when done).")],
    index_dir: IndexOption = DEFAULT_INDEX,
    docs: Annotated[
        Path, typer.Option(envvar="HELPLINE_DOCS_DIR", help="The documents the index was built from.")
    ] = Path("data/docs"),
    encoder: EncoderOption = None,
    epochs: Annotated[int, typer.Option(help="Passes over the questions.")] = _Q.epochs,
    learning_rate: Annotated[float, typer.Option(help="AdamW peak learning rate.")] = _Q.learning_rate,
    batch_size: Annotated[
        int, typer.Option(help="Questions per step.", rich_help_panel=TUNING)
    ] = _Q.batch_size,
    seed: Annotated[int, typer.Option(help="Seed for init and data order.")] = _Q.seed,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output.")] = _Q.overwrite,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the question side of dense retrieval on annotated questions (passage vectors stay)."""
    from retrieval.query_training import train_query_encoder as train  # noqa: PLC0415 - torch

    with _user_errors(), _progress() as update:
        config = QueryEncoderConfig(
            data=tuple(data), index_dir=index_dir, docs_dir=docs, output=output, encoder_dir=encoder,
            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed, overwrite=overwrite,
        )  # fmt: skip
        report = train(config, progress=lambda step, steps, loss: update("query encoder", step, steps))
    if as_json:
        typer.echo(json.dumps(report.to_json()))
        return
    typer.echo(
        f"trained the query encoder on {report.questions} questions against {report.candidates} passages "
        f"({report.skipped} skipped: no passage holds their whole answer) in {report.seconds:.0f} s, "
        f"final loss {report.final_loss:.3f} -> {report.output}"
    )


@app.command()
def stats(index_dir: IndexOption = DEFAULT_INDEX, as_json: JsonOption = False) -> None:
    """Describe an index: documents, passages, vocabulary, settings, build time."""
    with _user_errors():
        data = _stats(load_index(index_dir), index_dir)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    for key, value in data.items():
        typer.echo(f"{key:>18}: {value}")

"""Build and load the on-disk index: passages (JSON Lines), a manifest and, for hybrid search, vectors.

``manifest.py`` says what a generation holds and checks it; ``generations.py`` writes a generation
aside and swaps it in atomically. Loading re-tokenises the passages and rebuilds the BM25 model (no
pickle to trust or to go stale); passage vectors are stored (embedding is the slow part of a build) and
reused for documents whose hash is unchanged, as their passages are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.boilerplate import content_segments
from retrieval.encoder import TextEncoder
from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
from retrieval.generations import build_lock, set_aside, write_and_swap, write_synced
from retrieval.hybrid import HybridIndex, HybridSettings, encode_passages
from retrieval.index import BM25Index
from retrieval.ingest import Document, SkippedFile, read_folder
from retrieval.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    PASSAGES,
    VECTORS,
    DocumentRecord,
    DroppedPassage,
    EmbeddingRecord,
    IndexManifest,
    fix_hint,
    read_manifest,
    unreadable_version,
)
from retrieval.passages import Passage, split_into_passages
from retrieval.settings import IndexSettings
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import TOKENIZER_VERSION

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "PASSAGES", "VECTORS", "IndexManifest", "IndexReport", "build_index", "load_index"]

Progress = Callable[[str, int, int], None]
# Characters of a dropped block shown in the report.
DROPPED_PREVIEW = 80


@dataclass(frozen=True)
class IndexReport:
    """What ``build_index`` did (the ``retrieval index --json`` document).

    Attributes:
        documents: documents indexed.
        passages: passages in the index.
        skipped: files left out, with reasons.
        seconds: wall time of the build.
        reused_documents: documents whose passages were taken over unchanged from the old index.
        index_dir: where the index is.
        dropped: blocks left out as boilerplate, with reasons.
        embedding_model: the model that embedded the passages (None: BM25 only).
        embedded_passages: passages embedded in this build (the others' vectors were reused).
        kept_old_index: where the index it replaced was set aside, when that one was of a format or
            tokeniser version this program cannot read (so a newer program's index is not lost).
    """

    documents: int
    passages: int
    skipped: list[SkippedFile]
    seconds: float
    reused_documents: int = 0
    index_dir: str = ""
    dropped: list[DroppedPassage] = dataclasses.field(default_factory=list)
    embedding_model: str | None = None
    embedded_passages: int = 0
    kept_old_index: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Generation:
    """One generation's content, read and checked."""

    manifest: IndexManifest
    passages: list[Passage]
    vectors: np.ndarray | None


# --- Loading --------------------------------------------------------------------------------------


def load_index(
    index_dir: Path, encoder: TextEncoder | None = None, hybrid: HybridSettings | None = None
) -> BM25Index | HybridIndex:
    """Open an index that ``build_index`` wrote.

    Args:
        index_dir: the index directory (the link ``build_index`` maintains, or a generation folder).
        encoder: the query encoder for dense/hybrid search; None opens the BM25 side alone.
        hybrid: mode and fusion settings (with an encoder).

    Returns:
        A ``HybridIndex`` when an encoder is given (the index must hold vectors of the same model),
        else a ``BM25Index``.

    Raises:
        IndexLoadError: missing, corrupt, foreign or old-format index, or vectors of another model;
            the message names the path and says how to fix it.
    """
    index_dir = Path(index_dir)
    generation = _read_generation(index_dir, with_vectors=encoder is not None)
    try:
        synonyms = SynonymTable.load(generation.manifest.settings.synonyms_path)
    except RetrievalError as error:
        raise IndexLoadError(f"index {index_dir}: {error}; restore that file or rebuild the index") from error
    bm25 = BM25Index(generation.passages, generation.manifest.settings, generation.manifest, synonyms)
    if encoder is None:
        return bm25
    embedding = generation.manifest.embedding
    if embedding is None or generation.vectors is None:
        raise IndexLoadError(
            f"index {index_dir} has no passage vectors (built without an encoder); rebuild it with the "
            f"encoder, or search it in bm25 mode: {fix_hint(index_dir)}"
        )
    if embedding.model != encoder.model_id:
        raise IndexLoadError(
            f"index {index_dir} was embedded with {embedding.model}, but the encoder is {encoder.model_id}; "
            f"rebuild it with this encoder: {fix_hint(index_dir)}"
        )
    return HybridIndex(bm25, generation.vectors, encoder, hybrid)


def load_index_files(index_dir: Path) -> tuple[IndexManifest, list[Passage]]:
    """The manifest and passages of an index, checked but not made searchable (cheap).

    Raises:
        IndexLoadError: as ``load_index``.
    """
    generation = _read_generation(Path(index_dir), with_vectors=False)
    return generation.manifest, generation.passages


def load_manifest(index_dir: Path) -> IndexManifest:
    """The checked manifest of an index, without reading its data files (what ``retrieval search``
    needs to know whether the index holds vectors).

    Raises:
        IndexLoadError: as ``load_index``.
    """
    return _resolved_manifest(Path(index_dir))[1]


def _resolved_manifest(index_dir: Path) -> tuple[Path, IndexManifest]:
    if not index_dir.exists():
        raise IndexLoadError(f"no index at {index_dir}; {fix_hint(index_dir)}")
    # Resolve the link once, so a rebuild swapping it meanwhile cannot mix two generations.
    folder = index_dir.resolve()
    return folder, read_manifest(folder, index_dir)


def _read_generation(index_dir: Path, with_vectors: bool) -> _Generation:
    folder, manifest = _resolved_manifest(index_dir)
    passages = _read_passages(folder / PASSAGES, manifest, index_dir)
    vectors = _read_vectors(folder / VECTORS, manifest, index_dir) if with_vectors else None
    return _Generation(manifest, passages, vectors)


def _read_checked(path: Path, sha256: str, shown: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise IndexLoadError(f"index {shown}: cannot read {path.name}: {error}; {fix_hint(shown)}") from error
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise IndexLoadError(f"index {shown}: {path.name} does not match its manifest; {fix_hint(shown)}")
    return raw


def _read_passages(path: Path, manifest: IndexManifest, shown: Path) -> list[Passage]:
    raw = _read_checked(path, manifest.passages_sha256, shown)
    passages = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        try:
            passages.append(Passage(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise IndexLoadError(
                f"{path}:{number}: bad passage record ({error}); {fix_hint(shown)}"
            ) from error
    if len(passages) != manifest.passages:
        raise IndexLoadError(f"index {shown}: {len(passages)} passages, manifest says {manifest.passages}")
    return passages


def _read_vectors(path: Path, manifest: IndexManifest, shown: Path) -> np.ndarray | None:
    if manifest.embedding is None:
        return None
    raw = _read_checked(path, manifest.embedding.vectors_sha256, shown)
    vectors = np.load(io.BytesIO(raw), allow_pickle=False)
    if vectors.shape != (manifest.passages, manifest.embedding.dim):
        raise IndexLoadError(f"index {shown}: {path.name} has shape {vectors.shape}; {fix_hint(shown)}")
    return vectors.astype(np.float32)


# --- Building -------------------------------------------------------------------------------------


def build_index(
    docs_dir: Path,
    index_dir: Path,
    settings: IndexSettings | None = None,
    progress: Progress | None = None,
    encoder: TextEncoder | None = None,
) -> IndexReport:
    """(Re)build the index of a documents folder, atomically.

    Args:
        docs_dir: the documents folder (read recursively).
        index_dir: where the index lives (created, or replaced when it is an index already).
        settings: chunking and scoring settings; ``None``: the defaults.
        progress: called as ``progress(stage, done, total)`` while working.
        encoder: embeds the passages for dense and hybrid search; None builds a BM25-only index.

    Returns:
        The report: counts, skipped files and dropped blocks with reasons, seconds.

    Raises:
        IndexBuildError: no documents folder, no readable document, or ``index_dir`` is something
            other than an index.
    """
    started = time.perf_counter()
    settings = settings or IndexSettings()
    docs_dir, index_dir = Path(docs_dir), Path(index_dir)
    if not docs_dir.is_dir():
        raise IndexBuildError(f"documents folder {docs_dir} does not exist or is not a folder")
    _check_target(index_dir)
    SynonymTable.load(settings.synonyms_path)  # fail now, not when the bot loads the index
    on_file = (lambda done, total: progress("reading documents", done, total)) if progress else None
    documents, skipped = read_folder(docs_dir, on_file)
    if not documents:
        raise IndexBuildError(f"no readable documents in {docs_dir} ({len(skipped)} files skipped)")
    with build_lock(index_dir):
        previous = _previous_generation(index_dir)
        passages, records, dropped, reused = _chunk_all(documents, settings, previous)
        passages = unique_passages(passages)
        vectors, embedded = _embed(passages, encoder, previous, progress)
        # Serialised once: the manifest's checksums and the files written are the same bytes.
        files = {PASSAGES: _passages_bytes(passages)}
        if vectors is not None:
            files[VECTORS] = _vectors_bytes(vectors)
        manifest = _manifest(settings, records, skipped, dropped, len(passages), files, vectors, encoder)
        other_version = unreadable_version(index_dir)
        replaced = write_and_swap(index_dir, lambda folder: _write_generation(folder, manifest, files))
        kept = set_aside(index_dir, replaced, other_version) if other_version and replaced else None
    return IndexReport(
        documents=len(documents),
        passages=len(passages),
        skipped=skipped,
        seconds=round(time.perf_counter() - started, 3),
        reused_documents=reused,
        index_dir=str(index_dir),
        dropped=dropped,
        embedding_model=encoder.model_id if encoder is not None else None,
        embedded_passages=embedded,
        kept_old_index=kept,
    )


def _check_target(index_dir: Path) -> None:
    """Refuse to replace anything but our own index (or an empty folder)."""
    if index_dir.is_symlink() or not index_dir.exists():
        return
    if index_dir.is_dir() and ((index_dir / MANIFEST).is_file() or not any(index_dir.iterdir())):
        return
    raise IndexBuildError(f"refusing to replace {index_dir}: it exists and is not a retrieval index")


def _previous_generation(index_dir: Path) -> _Generation | None:
    """The current index's content, when it can be read (its passages and vectors may be reused)."""
    try:
        return _read_generation(index_dir, with_vectors=True)
    except RetrievalError as error:
        logger.info("not reusing passages of %s: %s", index_dir, error)
        return None


def _reusable_passages(
    previous: _Generation | None, settings: IndexSettings
) -> dict[str, tuple[str, list[Passage]]]:
    """doc_id -> (hash, passages) of the current index, when its passages can be reused."""
    if previous is None or previous.manifest.settings.chunking_key() != settings.chunking_key():
        return {}
    by_doc: dict[str, list[Passage]] = {}
    for passage in previous.passages:
        by_doc.setdefault(passage.doc_id, []).append(passage)
    # A document some of whose passages were dropped as repeats of another's cannot be reused as is.
    return {
        d.doc_id: (d.hash, by_doc[d.doc_id])
        for d in previous.manifest.documents
        if len(by_doc.get(d.doc_id, [])) == d.passages
    }


def _chunk_all(
    documents: list[Document], settings: IndexSettings, previous: _Generation | None
) -> tuple[list[Passage], list[DocumentRecord], list[DroppedPassage], int]:
    """Passages of every document (boilerplate left out), from the old index when a document is unchanged."""
    reusable = _reusable_passages(previous, settings)
    old_dropped: dict[str, list[DroppedPassage]] = {}
    for d in previous.manifest.dropped if previous is not None else ():
        old_dropped.setdefault(d.doc_id, []).append(d)
    passages: list[Passage] = []
    records: list[DocumentRecord] = []
    dropped: list[DroppedPassage] = []
    reused = 0
    for doc in documents:
        old_hash, old_passages = reusable.get(doc.doc_id, ("", []))
        if old_hash == doc.hash and old_passages:
            doc_passages = [dataclasses.replace(p, title=doc.title, source=doc.source) for p in old_passages]
            dropped.extend(old_dropped.get(doc.doc_id, []))
            reused += 1
        else:
            doc_passages, doc_dropped = _document_passages(doc, settings)
            dropped.extend(doc_dropped)
        passages.extend(doc_passages)
        records.append(DocumentRecord(doc.doc_id, doc.hash, doc.title, doc.source, len(doc_passages)))
    return passages, records, dropped, reused


def _document_passages(doc: Document, settings: IndexSettings) -> tuple[list[Passage], list[DroppedPassage]]:
    """Chunk each run of content blocks of one document; report the boilerplate blocks left out."""
    kept, dropped = content_segments(doc.text)
    passages: list[Passage] = []
    for start, end in kept:
        for passage in split_into_passages(
            doc.text[start:end], doc_id=doc.doc_id, title=doc.title, source=doc.source,
            target_words=settings.target_words, max_words=settings.max_words,
            overlap_sentences=settings.overlap_sentences,
        ):  # fmt: skip
            # Offsets stay relative to the whole document, as before segments existed.
            passages.append(
                dataclasses.replace(passage, start=passage.start + start, end=passage.end + start)
            )
    reasons = [
        DroppedPassage(doc.doc_id, reason, doc.text[s:e][:DROPPED_PREVIEW]) for s, e, reason in dropped
    ]
    return passages, reasons


def unique_passages(passages: Iterable[Passage]) -> list[Passage]:
    """Drop repeated passages (same text, same id), keeping the first.

    The sources repeat some paragraphs verbatim, and a repeat would only take a top-k slot from a
    different passage.

    Args:
        passages: passages in index order.

    Returns:
        The passages without repeats, in order.
    """
    seen: set[str] = set()
    unique = []
    for passage in passages:
        if passage.id not in seen:
            seen.add(passage.id)
            unique.append(passage)
    return unique


def _embed(
    passages: list[Passage],
    encoder: TextEncoder | None,
    previous: _Generation | None,
    progress: Progress | None,
) -> tuple[np.ndarray | None, int]:
    """Vectors of all passages, reusing the old index's vectors of the same model; (vectors, embedded)."""
    if encoder is None:
        return None, 0
    old: dict[str, np.ndarray] = {}
    embedding = previous.manifest.embedding if previous is not None else None
    if (
        previous is not None
        and previous.vectors is not None
        and embedding
        and embedding.model == encoder.model_id
    ):
        old = {p.id: v for p, v in zip(previous.passages, previous.vectors, strict=True)}
    todo = [p for p in passages if p.id not in old]
    on_batch = (lambda done, total: progress("embedding passages", done, total)) if progress else None
    fresh = (
        dict(zip((p.id for p in todo), encode_passages(encoder, todo, on_batch), strict=True)) if todo else {}
    )
    vectors = np.stack([fresh[p.id] if p.id in fresh else old[p.id] for p in passages]) if passages else None
    return vectors, len(todo)


def _manifest(
    settings: IndexSettings, records: list[DocumentRecord], skipped: list[SkippedFile],
    dropped: list[DroppedPassage], passage_count: int, files: dict[str, bytes], vectors: np.ndarray | None,
    encoder: TextEncoder | None,
) -> IndexManifest:  # fmt: skip
    embedding = None
    if vectors is not None and encoder is not None:
        embedding = EmbeddingRecord(encoder.model_id, int(vectors.shape[1]), _sha256(files[VECTORS]))
    return IndexManifest(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        tokenizer_version=TOKENIZER_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings=settings,
        documents=tuple(records),
        skipped=tuple(skipped),
        passages=passage_count,
        passages_sha256=_sha256(files[PASSAGES]),
        dropped=tuple(dropped),
        embedding=embedding,
    )


def _passages_bytes(passages: list[Passage]) -> bytes:
    return "".join(json.dumps(dataclasses.asdict(p), ensure_ascii=False) + "\n" for p in passages).encode()


def _vectors_bytes(vectors: np.ndarray) -> bytes:
    # float16 on disk: half the size, and cosine ranks are unchanged to ~1e-3.
    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float16), allow_pickle=False)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_generation(folder: Path, manifest: IndexManifest, files: dict[str, bytes]) -> None:
    """The data files first, the manifest last: a generation with a manifest is complete."""
    for name, data in files.items():
        write_synced(folder / name, data)
    write_synced(folder / MANIFEST, json.dumps(manifest.to_json(), indent=1, ensure_ascii=False).encode())

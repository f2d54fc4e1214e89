"""The on-disk index: a manifest plus passages (JSON Lines), built aside and swapped in atomically.

Layout: ``INDEX`` is a symbolic link to a sibling generation folder ``.INDEX.gen-<time>-<random>``
holding ``manifest.json`` and ``passages.jsonl``. A rebuild writes a new generation, then replaces the
link with ``os.replace`` (atomic on POSIX): a reader sees the old index or the new one, never a mix,
and a crash or a full disk mid-build leaves the old link and folder untouched. The generation just
replaced is kept (a reader may have resolved the link a moment ago); older ones are deleted.
Loading re-tokenises the passages and rebuilds the BM25 model (no pickle to trust or to go stale).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
from retrieval.index import BM25Index
from retrieval.ingest import Document, SkippedFile, read_folder
from retrieval.passages import Passage, split_into_passages
from retrieval.settings import IndexSettings
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import TOKENIZER_VERSION

logger = logging.getLogger(__name__)

FORMAT_NAME = "helpline-retrieval-index"
# Bump when the files, the normalisation or the chunking change meaning: older indexes are refused.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
_GENERATION = ".gen-"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DocumentRecord:
    """One indexed document, as the manifest lists it."""

    doc_id: str
    hash: str
    title: str
    source: str | None
    passages: int


@dataclass(frozen=True)
class IndexManifest:
    """What ``manifest.json`` holds; checked by ``load_index``.

    Attributes:
        format: always ``FORMAT_NAME`` (tells our index from any other folder).
        format_version: ``FORMAT_VERSION`` of the program that wrote it.
        tokenizer_version: ``TOKENIZER_VERSION`` of the program that wrote it.
        created_at: build time, ISO 8601 UTC.
        settings: the settings it was built with.
        documents: the documents indexed.
        skipped: the files left out, with reasons.
        passages: the number of lines of ``passages.jsonl``.
        passages_sha256: its checksum (a truncated or edited file is refused).
    """

    format: str
    format_version: int
    tokenizer_version: int
    created_at: str
    settings: IndexSettings
    documents: tuple[DocumentRecord, ...]
    skipped: tuple[SkippedFile, ...]
    passages: int
    passages_sha256: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["settings"] = self.settings.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexManifest:
        """Parse ``manifest.json``'s content (format fields are checked by the caller).

        Raises:
            KeyError, TypeError, ValueError: on a malformed manifest.
        """
        return cls(
            format=data["format"],
            format_version=int(data["format_version"]),
            tokenizer_version=int(data["tokenizer_version"]),
            created_at=str(data["created_at"]),
            settings=IndexSettings.from_json(data["settings"]),
            documents=tuple(DocumentRecord(**d) for d in data["documents"]),
            skipped=tuple(SkippedFile(**s) for s in data["skipped"]),
            passages=int(data["passages"]),
            passages_sha256=str(data["passages_sha256"]),
        )


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
        kept_old_index: where the index it replaced was set aside, when that one was of a format or
            tokeniser version this program cannot read (so a newer program's index is not lost).
    """

    documents: int
    passages: int
    skipped: list[SkippedFile]
    seconds: float
    reused_documents: int = 0
    index_dir: str = ""
    kept_old_index: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def _fix_hint(index_dir: Path) -> str:
    return f"run: retrieval index DOCS --index {index_dir}"


# --- Loading --------------------------------------------------------------------------------------


def load_index(index_dir: Path) -> BM25Index:
    """Open an index that ``build_index`` wrote.

    Args:
        index_dir: the index directory (the link ``build_index`` maintains, or a generation folder).

    Returns:
        The index, ready to search.

    Raises:
        IndexLoadError: missing, corrupt, foreign or old-format index; the message names the path and
            says how to fix it.
    """
    index_dir = Path(index_dir)
    if not index_dir.exists():
        raise IndexLoadError(f"no index at {index_dir}; {_fix_hint(index_dir)}")
    # Resolve the link once, so a rebuild swapping it meanwhile cannot mix two generations.
    folder = index_dir.resolve()
    manifest = read_manifest(folder, index_dir)
    passages = _read_passages(folder / PASSAGES, manifest, index_dir)
    try:
        synonyms = SynonymTable.load(manifest.settings.synonyms_path)
    except RetrievalError as error:
        raise IndexLoadError(f"index {index_dir}: {error}; restore that file or rebuild the index") from error
    return BM25Index(passages, manifest.settings, manifest, synonyms)


def read_manifest(folder: Path, shown: Path | None = None) -> IndexManifest:
    """Read and check ``manifest.json``.

    Args:
        folder: the generation folder.
        shown: the path to name in messages (the link the user gave).

    Returns:
        The manifest.

    Raises:
        IndexLoadError: no manifest, unparsable, foreign, or another format/tokeniser version.
    """
    shown = shown or folder
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexLoadError(f"{shown} is not a retrieval index (no {MANIFEST}); {_fix_hint(shown)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexLoadError(f"corrupt index manifest {path}: {error}; {_fix_hint(shown)}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise IndexLoadError(f"{path} is not a Helpline retrieval index manifest; {_fix_hint(shown)}")
    found = (data.get("format_version"), data.get("tokenizer_version"))
    if found != (FORMAT_VERSION, TOKENIZER_VERSION):
        raise IndexLoadError(
            f"index {shown} has format/tokenizer version {found[0]}/{found[1]}, this program reads "
            f"{FORMAT_VERSION}/{TOKENIZER_VERSION}; rebuild it: {_fix_hint(shown)}"
        )
    try:
        return IndexManifest.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise IndexLoadError(f"corrupt index manifest {path}: {error!r}; {_fix_hint(shown)}") from error


def _read_passages(path: Path, manifest: IndexManifest, shown: Path) -> list[Passage]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise IndexLoadError(
            f"index {shown}: cannot read {path.name}: {error}; {_fix_hint(shown)}"
        ) from error
    if hashlib.sha256(raw).hexdigest() != manifest.passages_sha256:
        raise IndexLoadError(f"index {shown}: {path.name} does not match its manifest; {_fix_hint(shown)}")
    passages = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        try:
            passages.append(Passage(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise IndexLoadError(
                f"{path}:{number}: bad passage record ({error}); {_fix_hint(shown)}"
            ) from error
    if len(passages) != manifest.passages:
        raise IndexLoadError(f"index {shown}: {len(passages)} passages, manifest says {manifest.passages}")
    return passages


# --- Building -------------------------------------------------------------------------------------


def build_index(
    docs_dir: Path,
    index_dir: Path,
    settings: IndexSettings | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """(Re)build the index of a documents folder, atomically.

    Args:
        docs_dir: the documents folder (read recursively).
        index_dir: where the index lives (created, or replaced when it is an index already).
        settings: chunking and scoring settings; ``None``: the defaults.
        progress: called as ``progress(stage, done, total)`` while working.

    Returns:
        The report: counts, skipped files with reasons, seconds.

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
    with _build_lock(index_dir):
        previous = _previous_passages(index_dir, settings)
        passages, records, reused = _chunk_all(documents, settings, previous)
        passages = unique_passages(passages)
        manifest_fields = {"settings": settings, "documents": tuple(records), "skipped": tuple(skipped)}
        other_version = _unreadable_version(index_dir)
        previous = _write_and_swap(index_dir, passages, manifest_fields, progress)
        kept = _set_aside(index_dir, previous, other_version) if other_version and previous else None
    return IndexReport(
        documents=len(documents),
        passages=len(passages),
        skipped=skipped,
        seconds=round(time.perf_counter() - started, 3),
        reused_documents=reused,
        index_dir=str(index_dir),
        kept_old_index=kept,
    )


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    """One build at a time per index (the CLI and the bot's /reindex may overlap): a concurrent build
    would delete the other's generation when it cleans up."""
    with _open_lock(index_dir) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBuildError(
                f"another build of {index_dir} is running; try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock(index_dir: Path) -> Any:
    """The lock file beside ``index_dir``, its folder created; a parent that is a file, or a place that
    cannot hold files (``/proc``), is bad input with a one-line reason, not a traceback."""
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        return open(index_dir.parent / f".{index_dir.name}.lock", "w")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        if isinstance(error, (FileExistsError, NotADirectoryError)):
            # The error names the folder it tried to make; the culprit is the nearest existing parent.
            blocker = next((p for p in index_dir.parents if p.exists()), index_dir.parent)
            reason = f"{blocker} is a file, not a folder"
        else:
            reason = f"{error.strerror or error}{f' ({error.filename})' if error.filename else ''}"
        raise IndexBuildError(
            f"cannot create the index {index_dir}: {reason}; choose another --index"
        ) from error


def _unreadable_version(index_dir: Path) -> str | None:
    """``"format/tokenizer"`` version of the index at ``index_dir`` when it is ours but of a version
    this program does not read (e.g. written by a newer one); None for anything else."""
    try:
        data = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad UTF-8 or JSON
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        return None
    found = (data.get("format_version"), data.get("tokenizer_version"))
    return None if found == (FORMAT_VERSION, TOKENIZER_VERSION) else f"{found[0]}/{found[1]}"


def _set_aside(index_dir: Path, previous: str, version: str) -> str:
    """Move the replaced generation out of the way of the clean-up of old generations, for good.

    Returns:
        Its new path.
    """
    kept = index_dir.parent / f".{index_dir.name}.kept-v{version.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    (index_dir.parent / previous).rename(kept)
    logger.warning("the replaced index of version %s is kept at %s", version, kept)
    return str(kept)


def _check_target(index_dir: Path) -> None:
    """Refuse to replace anything but our own index (or an empty folder)."""
    if index_dir.is_symlink() or not index_dir.exists():
        return
    if index_dir.is_dir() and ((index_dir / MANIFEST).is_file() or not any(index_dir.iterdir())):
        return
    raise IndexBuildError(f"refusing to replace {index_dir}: it exists and is not a retrieval index")


def _previous_passages(index_dir: Path, settings: IndexSettings) -> dict[str, tuple[str, list[Passage]]]:
    """doc_id -> (hash, passages) of the current index, when its passages can be reused."""
    try:
        old = load_index_files(index_dir)
    except RetrievalError as error:
        logger.info("not reusing passages of %s: %s", index_dir, error)
        return {}
    manifest, passages = old
    if manifest.settings.chunking_key() != settings.chunking_key():
        return {}
    by_doc: dict[str, list[Passage]] = {}
    for passage in passages:
        by_doc.setdefault(passage.doc_id, []).append(passage)
    # A document some of whose passages were dropped as repeats of another's cannot be reused as is.
    return {
        d.doc_id: (d.hash, by_doc[d.doc_id])
        for d in manifest.documents
        if len(by_doc.get(d.doc_id, [])) == d.passages
    }


def load_index_files(index_dir: Path) -> tuple[IndexManifest, list[Passage]]:
    """The manifest and passages of an index, checked but not made searchable (cheap).

    Raises:
        IndexLoadError: as ``load_index``.
    """
    index_dir = Path(index_dir)
    if not index_dir.exists():
        raise IndexLoadError(f"no index at {index_dir}; {_fix_hint(index_dir)}")
    folder = index_dir.resolve()
    manifest = read_manifest(folder, index_dir)
    return manifest, _read_passages(folder / PASSAGES, manifest, index_dir)


def _chunk_all(
    documents: list[Document], settings: IndexSettings, previous: dict[str, tuple[str, list[Passage]]]
) -> tuple[list[Passage], list[DocumentRecord], int]:
    """Passages of every document, taken from the old index when the document is unchanged."""
    passages: list[Passage] = []
    records: list[DocumentRecord] = []
    reused = 0
    for doc in documents:
        old_hash, old_passages = previous.get(doc.doc_id, ("", []))
        if old_hash == doc.hash and old_passages:
            doc_passages = [dataclasses.replace(p, title=doc.title, source=doc.source) for p in old_passages]
            reused += 1
        else:
            doc_passages = split_into_passages(
                doc.text, doc_id=doc.doc_id, title=doc.title, source=doc.source,
                target_words=settings.target_words, max_words=settings.max_words,
                overlap_sentences=settings.overlap_sentences,
            )  # fmt: skip
        passages.extend(doc_passages)
        records.append(DocumentRecord(doc.doc_id, doc.hash, doc.title, doc.source, len(doc_passages)))
    return passages, records, reused


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


def _write_and_swap(
    index_dir: Path, passages: list[Passage], manifest_fields: dict[str, Any], progress: Progress | None
) -> str | None:
    """Write a new generation beside ``index_dir`` and point ``index_dir`` at it.

    Returns:
        The name of the generation it replaced (None when there was none).
    """
    parent = index_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    generation = parent / f".{index_dir.name}{_GENERATION}{stamp}-{uuid.uuid4().hex[:8]}"
    generation.mkdir()
    try:
        _write_generation(generation, passages, manifest_fields, progress)
        previous = _swap_link(index_dir, generation)
    except BaseException:
        shutil.rmtree(generation, ignore_errors=True)
        raise
    _remove_old_generations(index_dir, keep={generation.name, previous})
    return previous


def _write_generation(
    folder: Path, passages: list[Passage], manifest_fields: dict[str, Any], progress: Progress | None
) -> None:
    lines = []
    for done, passage in enumerate(passages, 1):
        lines.append(json.dumps(dataclasses.asdict(passage), ensure_ascii=False))
        if progress is not None and (done % 1000 == 0 or done == len(passages)):
            progress("writing passages", done, len(passages))
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    _write_synced(folder / PASSAGES, raw)
    manifest = IndexManifest(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        tokenizer_version=TOKENIZER_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        passages=len(passages),
        passages_sha256=hashlib.sha256(raw).hexdigest(),
        **manifest_fields,
    )
    _write_synced(folder / MANIFEST, json.dumps(manifest.to_json(), indent=1, ensure_ascii=False).encode())


def _write_synced(path: Path, data: bytes) -> None:
    """Write and fsync, so the swap never points at data still in the page cache only."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _swap_link(index_dir: Path, generation: Path) -> str | None:
    """Atomically point ``index_dir`` at ``generation``; returns the name of the replaced generation."""
    previous = os.readlink(index_dir) if index_dir.is_symlink() else None
    if index_dir.is_dir() and not index_dir.is_symlink():
        # A plain folder (an empty one, or an index from before links): move it aside first. This is
        # the one moment the path is missing, and it happens once per index.
        moved = index_dir.parent / f".{index_dir.name}{_GENERATION}legacy-{uuid.uuid4().hex[:8]}"
        index_dir.rename(moved)
        previous = moved.name
    link = index_dir.parent / f".{index_dir.name}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(generation.name, link)  # relative: the parent folder can be moved or mounted elsewhere
    try:
        os.replace(link, index_dir)
    except BaseException:
        link.unlink(missing_ok=True)
        raise
    _sync_dir(index_dir.parent)
    return Path(previous).name if previous else None


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_old_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than the current and the one just replaced (and crash leftovers)."""
    prefix = f".{index_dir.name}{_GENERATION}"
    for folder in index_dir.parent.glob(f"{prefix}*"):
        if folder.name not in keep and folder.is_dir() and not folder.is_symlink():
            logger.info("removing old index generation %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    for link in index_dir.parent.glob(f".{index_dir.name}.link-*"):
        link.unlink(missing_ok=True)

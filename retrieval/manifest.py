"""What an index generation holds and how its ``manifest.json`` is read and checked.

A generation folder holds ``manifest.json``, ``passages.jsonl`` and, when the index is dense too,
``vectors.npy`` (one float16 unit vector per passage, in passage order). The manifest records the
checksum of each data file, so a truncated or edited file is refused instead of served.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.errors import IndexLoadError
from retrieval.ingest import SkippedFile
from retrieval.settings import IndexSettings
from retrieval.tokenize import TOKENIZER_VERSION

FORMAT_NAME = "helpline-retrieval-index"
# Bump when the files, the normalisation or the chunking change meaning: older indexes are refused.
# 2: boilerplate passages are dropped, sentences split by pysbd, optional passage vectors.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"


def fix_hint(index_dir: Path) -> str:
    return f"run: retrieval index DOCS --index {index_dir}"


@dataclass(frozen=True)
class DocumentRecord:
    """One indexed document, as the manifest lists it."""

    doc_id: str
    hash: str
    title: str
    source: str | None
    passages: int


@dataclass(frozen=True)
class DroppedPassage:
    """A passage left out of the index because it answers nothing (a notice, a link list...)."""

    doc_id: str
    reason: str
    preview: str


@dataclass(frozen=True)
class EmbeddingRecord:
    """The dense side of an index: which model embedded the passages, and the vectors' checksum."""

    model: str
    dim: int
    vectors_sha256: str


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
        dropped: passages left out as boilerplate, with reasons.
        embedding: the passage vectors' model and checksum; None for a BM25-only index.
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
    dropped: tuple[DroppedPassage, ...] = ()
    embedding: EmbeddingRecord | None = None

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
        embedding = data.get("embedding")
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
            dropped=tuple(DroppedPassage(**d) for d in data.get("dropped", ())),
            embedding=EmbeddingRecord(**embedding) if embedding is not None else None,
        )


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
        raise IndexLoadError(f"{shown} is not a retrieval index (no {MANIFEST}); {fix_hint(shown)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexLoadError(f"corrupt index manifest {path}: {error}; {fix_hint(shown)}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise IndexLoadError(f"{path} is not a Helpline retrieval index manifest; {fix_hint(shown)}")
    found = (data.get("format_version"), data.get("tokenizer_version"))
    if found != (FORMAT_VERSION, TOKENIZER_VERSION):
        raise IndexLoadError(
            f"index {shown} has format/tokenizer version {found[0]}/{found[1]}, this program reads "
            f"{FORMAT_VERSION}/{TOKENIZER_VERSION}; rebuild it: {fix_hint(shown)}"
        )
    try:
        return IndexManifest.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise IndexLoadError(f"corrupt index manifest {path}: {error!r}; {fix_hint(shown)}") from error


def unreadable_version(index_dir: Path) -> str | None:
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

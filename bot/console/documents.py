"""The documents the console annotates: ``HELPLINE_DOCS_DIR`` read exactly as ``retrieval index`` reads it.

The text an annotation's offsets index into is the *ingested* document text,
``retrieval.ingest.read_document(...).text``: NFKC-normalised, whitespace collapsed inside paragraphs,
paragraphs separated by one blank line, a Markdown title line and ``Source:`` line taken out. It is the
text the index cuts into passages (``Passage.start``/``end`` are offsets into it), and the text the
export writes as the SQuAD ``context``, so ``finetune check`` verifies every ``answer_start`` against
the very characters the admin selected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from retrieval.ingest import Document, SkipFile, check_location, iter_files, read_document


@dataclass(frozen=True)
class DocumentInfo:
    """A document in the list: id, title and size (the text is read on demand)."""

    doc_id: str
    title: str
    source: str | None
    chars: int
    hash: str


class DocumentLibrary:
    """Reads documents from a folder, re-reading a file only when its size or mtime changed.

    Args:
        docs_dir: the documents folder (``HELPLINE_DOCS_DIR``).
    """

    def __init__(self, docs_dir: Path):
        self.docs_dir = Path(docs_dir)
        self._cache: dict[str, tuple[tuple[int, int], Document | None]] = {}
        self._lock = threading.Lock()

    def list(self) -> list[DocumentInfo]:
        """Every readable document, by id (unreadable files are left out, as the index leaves them out)."""
        if not self.docs_dir.is_dir():
            return []
        documents = []
        for path in iter_files(self.docs_dir):
            doc = self._read(path, path.relative_to(self.docs_dir).as_posix())
            if doc is not None:
                documents.append(DocumentInfo(doc.doc_id, doc.title, doc.source, len(doc.text), doc.hash))
        return documents

    def get(self, doc_id: str) -> Document | None:
        """The document with this id, or None (unknown, unreadable, or outside the folder)."""
        if not doc_id or doc_id.startswith("/") or "\\" in doc_id or ".." in Path(doc_id).parts:
            return None
        path = self.docs_dir / doc_id
        if not path.is_file():
            return None
        return self._read(path, doc_id)

    def _read(self, path: Path, doc_id: str) -> Document | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(doc_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            check_location(path, doc_id, self.docs_dir.resolve())
            doc: Document | None = read_document(path, doc_id)
        except SkipFile:
            doc = None
        with self._lock:
            self._cache[doc_id] = (key, doc)
        return doc

"""The console's records in the bot's SQLite database: annotations, feedback reviews, the token hash.

Its own connection to the database the bot writes (WAL mode: the bot and the console never block each
other for long); the tables come from ``bot.migrations`` (``m004_console``), applied on open.

An annotation is verified when it is saved: ``answer_text`` must be exactly the document text at
``answer_start``, with no surrounding whitespace (``finetune check`` would otherwise have to repair it).
The document text is snapshotted by content hash, so the annotation's offsets keep pointing into the
text they were made on even after the document is edited.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.errors import BadInputError
from bot.migrations import open_database, write_transaction

VERDICTS = ("answer", "not_in_documents", "dismissed")


class SpanError(BadInputError):
    """An answer span that does not fit its text; ``field`` names the offending input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Annotation:
    """One question about one document, with its answer span or marked unanswerable.

    Attributes:
        id: the row id.
        doc_id: the document (its path under the documents folder).
        doc_hash: the content hash of the document text the offsets index into.
        title: the document's title.
        question: the question.
        answer_start: offset of the answer in the document text; None when unanswerable.
        answer_text: the answer; None when unanswerable.
        created_at: ISO 8601 UTC.
        updated_at: ISO 8601 UTC.
    """

    id: int
    doc_id: str
    doc_hash: str
    title: str
    question: str
    answer_start: int | None
    answer_text: str | None
    created_at: str
    updated_at: str

    @property
    def unanswerable(self) -> bool:
        return self.answer_text is None

    def to_json(self) -> dict[str, Any]:
        """The API record (``unanswerable`` included)."""
        return {**asdict(self), "unanswerable": self.unanswerable}


@dataclass(frozen=True)
class Review:
    """An admin's verdict on a question up for review.

    Attributes:
        question_id: the question's row id.
        verdict: ``answer``, ``not_in_documents`` or ``dismissed``.
        passage_id: the passage holding the answer (verdict ``answer``).
        doc_id: that passage's document.
        title: that document's title.
        context: that passage's text, which ``answer_start`` indexes into.
        answer_start: the answer's offset in ``context``.
        answer_text: the answer.
        reviewed_at: ISO 8601 UTC.
    """

    question_id: int
    verdict: str
    passage_id: str | None
    doc_id: str | None
    title: str | None
    context: str | None
    answer_start: int | None
    answer_text: str | None
    reviewed_at: str


def check_span(text: str, answer_start: Any, answer_text: Any) -> tuple[int, str]:
    """Verify an answer span against the text it claims to be in.

    Args:
        text: the document (or passage) text.
        answer_start: the claimed offset.
        answer_text: the claimed answer.

    Returns:
        ``(answer_start, answer_text)``, checked.

    Raises:
        SpanError: naming ``answer_text`` or ``answer_start``.
    """
    if not isinstance(answer_text, str) or not answer_text.strip():
        raise SpanError("answer_text", "answer_text is empty: select the answer in the text")
    if answer_text != answer_text.strip():
        raise SpanError("answer_text", "answer_text starts or ends with whitespace: select the words only")
    if isinstance(answer_start, bool) or not isinstance(answer_start, int):
        raise SpanError("answer_start", f"answer_start must be an integer, got {answer_start!r}")
    if not 0 <= answer_start <= len(text) - len(answer_text):
        raise SpanError(
            "answer_start", f"answer_start {answer_start} is outside the text (0 to {len(text)} characters)"
        )
    found = text[answer_start : answer_start + len(answer_text)]
    if found != answer_text:
        raise SpanError(
            "answer_start",
            f"answer_start {answer_start} does not match answer_text {answer_text!r}:"
            f" the text there is {found!r}",
        )
    return answer_start, answer_text


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class ConsoleRecords:
    """The console's tables. Thread-safe; every public method is one short transaction.

    Args:
        path: the bot's SQLite database (created when missing).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_database(self.path, self._lock)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    # --- metadata -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table, or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- annotations --------------------------------------------------------------------------

    def add_annotation(
        self, document: Any, question: str, answer_start: int | None, answer_text: str | None
    ) -> Annotation:
        """Verify and store an annotation of ``document`` (a ``retrieval.ingest.Document``).

        Args:
            document: the document as ingested (its ``text`` is what the offsets index into).
            question: the question (stripped; must not be empty).
            answer_start: the answer's offset, or None with ``answer_text`` None for "no answer".
            answer_text: the answer, or None.

        Returns:
            The stored annotation.

        Raises:
            SpanError: empty question, or a span that does not match the text.
        """
        question = _checked_question(question)
        if answer_text is not None or answer_start is not None:
            answer_start, answer_text = check_span(document.text, answer_start, answer_text)
        now = _now()
        with self._transaction() as conn:
            self._snapshot(conn, document)
            cursor = conn.execute(
                "INSERT INTO annotations (created_at, updated_at, doc_id, doc_hash, question, answer_start,"
                " answer_text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, now, document.doc_id, document.hash, question, answer_start, answer_text),
            )
            new_id = int(cursor.lastrowid)
        return self.annotation(new_id)

    def update_annotation(
        self,
        annotation_id: int,
        document: Any,
        question: str,
        answer_start: int | None,
        answer_text: str | None,
    ) -> Annotation | None:
        """Replace an annotation's question and span (verified against ``document`` as when adding).

        Returns:
            The updated annotation, or None when there is no such annotation.
        """
        question = _checked_question(question)
        if answer_text is not None or answer_start is not None:
            answer_start, answer_text = check_span(document.text, answer_start, answer_text)
        with self._transaction() as conn:
            self._snapshot(conn, document)
            cursor = conn.execute(
                "UPDATE annotations SET updated_at = ?, doc_id = ?, doc_hash = ?, question = ?,"
                " answer_start = ?, answer_text = ? WHERE id = ?",
                (_now(), document.doc_id, document.hash, question, answer_start, answer_text, annotation_id),
            )
            if cursor.rowcount == 0:
                return None
        return self.annotation(annotation_id)

    @staticmethod
    def _snapshot(conn: sqlite3.Connection, document: Any) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO console_documents (hash, doc_id, title, source, text)"
            " VALUES (?, ?, ?, ?, ?)",
            (document.hash, document.doc_id, document.title, document.source, document.text),
        )

    def delete_annotation(self, annotation_id: int) -> bool:
        """Delete an annotation; False when there was none."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM annotations WHERE id = ?", (annotation_id,)).rowcount > 0

    _ANNOTATION_COLUMNS = (
        "SELECT a.id, a.doc_id, a.doc_hash, d.title, a.question, a.answer_start, a.answer_text, a.created_at,"
        " a.updated_at FROM annotations a JOIN console_documents d ON d.hash = a.doc_hash"
    )

    def annotation(self, annotation_id: int) -> Annotation | None:
        """One annotation, or None."""
        with self._lock:
            row = self._conn.execute(
                f"{self._ANNOTATION_COLUMNS} WHERE a.id = ?", (annotation_id,)
            ).fetchone()
        return Annotation(*row) if row else None

    def annotations(self, doc_id: str | None = None) -> list[Annotation]:
        """All annotations (of one document when ``doc_id`` is given), oldest first."""
        where, args = (" WHERE a.doc_id = ?", (doc_id,)) if doc_id is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(f"{self._ANNOTATION_COLUMNS}{where} ORDER BY a.id", args).fetchall()
        return [Annotation(*row) for row in rows]

    def annotation_counts(self) -> dict[str, int]:
        """doc_id -> how many annotations it has."""
        with self._lock:
            rows = self._conn.execute("SELECT doc_id, COUNT(*) FROM annotations GROUP BY doc_id").fetchall()
        return dict(rows)

    def snapshot_text(self, doc_hash: str) -> str | None:
        """The document text an annotation was made on."""
        with self._lock:
            row = self._conn.execute(
                "SELECT text FROM console_documents WHERE hash = ?", (doc_hash,)
            ).fetchone()
        return row[0] if row else None

    # --- feedback reviews ---------------------------------------------------------------------

    def review(
        self,
        question_id: int,
        verdict: str,
        passage: Any = None,
        answer_start: int | None = None,
        answer_text: str | None = None,
    ) -> Review:
        """Record the verdict on a question up for review (a later verdict replaces an earlier one).

        Args:
            question_id: the question's row id.
            verdict: ``answer`` (with ``passage`` and the span), ``not_in_documents`` or ``dismissed``.
            passage: the passage the answer is in (anything with ``id``, ``doc_id``, ``title``, ``text``).
            answer_start: the answer's offset in ``passage.text``.
            answer_text: the answer.

        Raises:
            SpanError: a bad verdict, or an answer span that does not match the passage.
        """
        if verdict not in VERDICTS:
            raise SpanError("verdict", f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        row: tuple[Any, ...] = (None,) * 6
        if verdict == "answer":
            if passage is None:
                raise SpanError("passage_id", "passage_id: choose the passage that holds the answer")
            answer_start, answer_text = check_span(passage.text, answer_start, answer_text)
            row = (passage.id, passage.doc_id, passage.title, passage.text, answer_start, answer_text)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO feedback_reviews (question_id, reviewed_at, verdict, passage_id,"
                " doc_id, title, context, answer_start, answer_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (question_id, _now(), verdict, *row),
            )
        return self.reviews()[question_id]

    def reviews(self) -> dict[int, Review]:
        """question_id -> the admin's verdict."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT question_id, verdict, passage_id, doc_id, title, context, answer_start, answer_text,"
                " reviewed_at FROM feedback_reviews ORDER BY question_id"
            ).fetchall()
        return {row[0]: Review(*row) for row in rows}


def _checked_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise SpanError("question", "question is empty: type the question a member would ask")
    return question.strip()
